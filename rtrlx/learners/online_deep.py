"""Online learning for deep stacks of diagonal recurrent blocks (the online LRU's rule)."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import state_to_units, units_to_state
from ._base import Learner, batch_init, batch_mean, is_batched, map_batch
from ._elementwise import _unit_blocks, carry_traces, expand_units


class OnlineDeepState(NamedTuple):
    """State of ``online_deep()``."""

    hidden: State  # the stack's state: every block's state, then the top output
    # Per block: for each array W of the block's recurrent cell, (S, *W.shape):
    # d h^l_t[a, unit(i)] / d W[i] (element-wise, as in diag_rtrl).
    traces: tuple[PyTree[Array], ...]
    # For each array of the encoder, (S, n, *W.shape): d h^1_t[a, u] / d W, dense (the
    # encoder drives every unit of the first block).
    encoder_trace: PyTree[Array]


def _check(model: Any) -> Any:
    from ..models.deep import DeepRecurrent

    if not isinstance(model, DeepRecurrent):
        raise UnsupportedCellError(
            f"online_deep: expected an rtrlx.models.DeepRecurrent stack, got "
            f"{type(model).__name__}. For a single diagonal cell use rtrlx.diag_rtrl()."
        )
    return model


def _carry_dense(blocks: Array, trace: Array) -> Array:
    """``sum_b blocks[a, b, u] * trace[b, u, ...]`` for a dense trace ``(S, n, ...)``."""
    s = blocks.shape[0]
    mix = blocks.reshape(s, s, blocks.shape[-1], *(1,) * (trace.ndim - 2))
    return jnp.stack([sum(mix[a, b] * trace[b] for b in range(s)) for a in range(s)])


def online_deep() -> Learner:
    """Online learning of a deep stack of diagonal recurrent blocks (arXiv 2305.15947).

    For a :class:`rtrlx.models.DeepRecurrent` stack, each block keeps the element-wise
    traces of its own recurrent cell's parameters (exact within the block, as in
    :func:`diag_rtrl`). The first block also keeps a dense trace for the encoder, which
    drives it from below. The error ``dL_t/dh^l_t`` reaching every block comes from
    backpropagation through the current time step only ("spatial" backprop, one vjp).
    Every parameter's gradient is that step's spatial gradient plus
    ``dL_t/dh^l_t · (J_h e_{t-1})``, the part of its influence carried from the past by its
    block's trace. With one block this is exact RTRL. With several, a block's parameters
    also reach the blocks above through time, and that influence is dropped: the
    approximation of the paper's online learning.

    Returns:
        A :class:`Learner` for :class:`rtrlx.models.DeepRecurrent`; exact with one block.

    Raises:
        UnsupportedCellError: from ``init``/``step`` on anything but a DeepRecurrent stack.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> model = rtrlx.models.DeepRecurrent(2, 4, layers=2, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.online_deep(), model, head, rtrlx.losses.mse,
        ...     jnp.ones((5, 2)), jnp.zeros((5, 1)))

    References:
        Zucchet, Meier, Schug, Mujika, Sacramento. Online learning of long-range
        dependencies. NeurIPS 2023. https://arxiv.org/abs/2305.15947
    """

    def init(model, *, key=None, batch_size=None):
        del key
        model = _check(model)
        n = model.hidden_size

        def make():
            traces = []
            for cell in model.cells:
                s = state_to_units(cell.init_state()).shape[0]
                params = eqx.filter(cell, eqx.is_inexact_array)
                traces.append(
                    jax.tree.map(lambda w, s=s: jnp.zeros((s, *w.shape), w.dtype), params)
                )
            s1 = state_to_units(model.cells[0].init_state()).shape[0]
            enc = eqx.filter(model.encoder, eqx.is_inexact_array)
            encoder_trace = jax.tree.map(lambda w: jnp.zeros((s1, n, *w.shape), w.dtype), enc)
            return OnlineDeepState(model.init_state(), tuple(traces), encoder_trace)

        return batch_init(model, batch_size, make)

    def step(model, head, loss_fn, state: OnlineDeepState, x, y):
        model = _check(model)
        batched = is_batched(model, state.hidden, x, "online_deep")
        from ..models.deep import _norm

        params, static = eqx.partition((model, head), eqx.is_inexact_array)

        def one(hidden, traces, encoder_trace, x, y):
            prev = hidden[:-1]
            # 1. Each block's input this step, its new state and its Jacobian blocks.
            u = model.encoder(x)
            new_units, propagated, immediate = [], [], []
            blocks_first = None
            for cell, glu, h, trace in zip(model.cells, model.glus, prev, traces, strict=True):
                z = _norm(u)
                cp, cs = eqx.partition(cell, eqx.is_inexact_array)
                units = state_to_units(h)
                nu, j_theta, blocks = _unit_blocks(cell, cp, cs, units, z)
                propagated.append(carry_traces(blocks, trace, cell.param_units()))
                immediate.append(j_theta)
                if blocks_first is None:
                    blocks_first = blocks
                new_units.append(nu)
                a, b = jnp.split(glu(cell.features(units_to_state(nu, h))), 2)
                u = u + a * jax.nn.sigmoid(b)
            # The encoder's past influence on block 1, carried by its dense trace.
            first = blocks_first
            assert first is not None  # a stack has at least one block
            enc_prop = jax.tree.map(lambda tr: _carry_dense(first, tr), encoder_trace)

            # 2. Spatial backprop: the step with the previous states fixed; eps injects into
            # every new block state, so its gradient is dL_t/dh^l_t through this step.
            def spatial(p, eps):
                mdl, hd = eqx.combine(p, static)
                u = mdl.encoder(x)
                for cell, glu, h, e in zip(mdl.cells, mdl.glus, prev, eps, strict=True):
                    nu = state_to_units(cell(h, _norm(u))) + e
                    a, b = jnp.split(glu(cell.features(units_to_state(nu, h))), 2)
                    u = u + a * jax.nn.sigmoid(b)
                return loss_fn(hd(u), y)

            eps = tuple(jnp.zeros_like(nu) for nu in new_units)
            loss, (g_params, deltas) = jax.value_and_grad(spatial, argnums=(0, 1))(params, eps)
            g_model, g_head = g_params

            # 3. Add each block's carried influence: dL/dh^l · (J_h trace_{t-1}).
            cells_g = []
            for cell, gc, prop, delta in zip(
                model.cells, g_model.cells, propagated, deltas, strict=True
            ):
                carried = jax.tree.map(
                    lambda tr, p, delta=delta: jnp.sum(
                        expand_units(delta, np.asarray(p)) * tr, axis=0
                    ),
                    prop,
                    cell.param_units(),
                )
                cells_g.append(jax.tree.map(jnp.add, gc, carried))
            d1 = deltas[0]
            enc_carried = jax.tree.map(
                lambda tr: jnp.tensordot(d1, tr, axes=((0, 1), (0, 1))), enc_prop
            )
            g_model = eqx.tree_at(lambda m: m.cells, g_model, tuple(cells_g))
            g_model = eqx.tree_at(
                lambda m: m.encoder, g_model, jax.tree.map(jnp.add, g_model.encoder, enc_carried)
            )

            # 4. New traces: carried part plus this step's immediate Jacobian.
            new_traces = tuple(
                jax.tree.map(jnp.add, prop, imm)
                for prop, imm in zip(propagated, immediate, strict=True)
            )
            cell1, h1 = model.cells[0], prev[0]

            def first_block(enc):
                return state_to_units(cell1(h1, _norm(enc(x))))

            enc_p, enc_s = eqx.partition(model.encoder, eqx.is_inexact_array)
            jac = jax.jacrev(lambda p: first_block(eqx.combine(p, enc_s)))(enc_p)
            new_enc = jax.tree.map(jnp.add, enc_prop, jac)
            new_hidden = (
                *(units_to_state(nu, h) for nu, h in zip(new_units, prev, strict=True)),
                u,
            )
            return new_hidden, new_traces, new_enc, loss, g_model, g_head

        hidden, traces, enc, loss, g_model, g_head = map_batch(
            one, batched, state.hidden, state.traces, state.encoder_trace, x, y
        )
        loss, g_model, g_head = batch_mean((loss, g_model, g_head), batched)
        return OnlineDeepState(hidden, traces, enc), loss, (g_model, g_head)

    def exact_on(model: Any) -> bool:
        from ..models.deep import DeepRecurrent

        return isinstance(model, DeepRecurrent) and len(model.cells) == 1

    return Learner(init=init, step=step, name="online_deep", exact_on=exact_on)
