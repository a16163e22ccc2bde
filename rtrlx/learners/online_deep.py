"""Online learning for deep stacks of diagonal recurrent blocks (the online LRU's rule).

Every path here (the streaming step, the spatial loss, the per-step Jacobians and the
whole-chunk forward) runs the stack through :meth:`rtrlx.models.DeepRecurrent.forward`,
supplying only each block's cell step, so the stack's forward pass is the model's own.
"""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, PyTree

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import state_to_units, units_to_state
from ..models import DeepRecurrent
from ._base import Learner, LossFn, batch_init, is_batched
from ._elementwise import _unit_blocks, carry_traces, expand_units

#: The approximations ``online_deep`` offers, from the most to the least complete.
online_deep_approximations = ("full", "snap1", "truncated", "spatial")
APPROXIMATIONS = online_deep_approximations


class OnlineDeepState(NamedTuple):
    """State of ``online_deep()``."""

    hidden: State  # the stack's state: every block's state, then the top output
    # Per block: for each array W of the block's recurrent cell, (S, *W.shape):
    # d h^l_t[a, unit(i)] / d W[i] (element-wise, as in diag_rtrl). Empty without traces.
    traces: tuple[PyTree[Array], ...]
    # For each array of the encoder, (S, n, *W.shape): d h^1_t[a, u] / d W, dense (the
    # encoder drives every unit of the first block). Empty unless approx == "full".
    encoder_trace: PyTree[Array]


def _check(model: Any) -> DeepRecurrent:
    if not isinstance(model, DeepRecurrent):
        raise UnsupportedCellError(
            f"online_deep: expected an rtrlx.models.DeepRecurrent stack, got "
            f"{type(model).__name__}. For a single diagonal cell use rtrlx.diag_rtrl()."
        )
    return model


def _encoder_units(encoder: Any, n: int) -> PyTree[np.ndarray]:
    """Unit indices for the dense encoder trace: its axis 1 (after ``S``) is block 1's unit."""
    params = eqx.filter(encoder, eqx.is_inexact_array)
    return jax.tree.map(
        lambda w: np.broadcast_to(np.arange(n).reshape(n, *(1,) * w.ndim), (n, *w.shape)),
        params,
    )


def _contract(delta: Array, trace: Array, units: np.ndarray) -> Array:
    """``sum_a delta[a, unit(i)] * trace[a, i]``: a trace read out by a layer's error."""
    return jnp.sum(expand_units(delta, units) * trace, axis=0)


def _local(
    model: DeepRecurrent, prev: tuple, x: Array, approx: str, chunked: tuple[bool, ...] = ()
) -> tuple[tuple, tuple, PyTree[Array]]:
    """One step's immediate Jacobians, for one example, with the previous states ``prev`` given.

    Args:
        model: the stack.
        prev: every block's previous state.
        x: this step's input.
        approx: a traced approximation (``"full"`` or ``"snap1"``).
        chunked: per block, whether its cell's rule has a chunked form (then its immediate
            Jacobian is not formed: the rule works from the block's inputs).

    Returns:
        ``(j_thetas, blocks, encoder_jac)``: each block's immediate parameter Jacobian rows
        and state Jacobian blocks ``(S, S, n)`` (None for a chunked block, whose blocks are
        formed only where the encoder trace needs them); block 1's Jacobian in the
        encoder's parameters ``(S, n, *W.shape)`` (``"full"`` only).
    """

    def advance(i: int, z: Array) -> tuple[State, tuple]:
        cell, h = model.cells[i], prev[i]
        if i < len(chunked) and chunked[i]:
            blocks = _state_blocks(cell, h, z) if i == 0 and approx == "full" else None
            return cell(h, z), (None, blocks)
        cp, cs = eqx.partition(cell, eqx.is_inexact_array)
        nu, j_theta, blocks = _unit_blocks(cell, cp, cs, state_to_units(h), z)
        return units_to_state(nu, h), (j_theta, blocks)

    _, _, aux = model.forward(x, advance)
    j_thetas, blocks = zip(*aux, strict=True)
    encoder_jac = _encoder_jacobian(model, prev, x) if approx == "full" else ()
    return j_thetas, blocks, encoder_jac


def _state_blocks(cell: Any, h: State, z: Array) -> Array:
    """The unit blocks ``(S, S, n)`` of a diagonal cell's state Jacobian, by ``S`` jvps."""
    units = state_to_units(h)
    s = units.shape[0]

    def f(u):
        return state_to_units(cell(units_to_state(u, h), z))

    cols = [jax.jvp(f, (units,), (jnp.zeros_like(units).at[b].set(1.0),))[1] for b in range(s)]
    return jnp.stack(cols, axis=1)  # [a, b, u] = d h'[a, u] / d h[b, u]


def _encoder_jacobian(model: DeepRecurrent, prev: tuple, x: Array) -> PyTree[Array]:
    """``d h^1_t / d encoder`` through the current step: ``(S, n, *W.shape)`` per array.

    Forward mode through block 1 (``n`` tangents, one per encoder output) gives
    ``M = d h^1 / d u``; the encoder's own pullback then spreads each row of ``M`` over its
    parameters (an outer product with ``x`` for a linear encoder).
    """
    cell1, h1 = model.cells[0], prev[0]
    enc_p, enc_s = eqx.partition(model.encoder, eqx.is_inexact_array)

    def encode(p: PyTree[Array]) -> Array:
        return eqx.tree_at(lambda m: m.encoder, model, eqx.combine(p, enc_s)).encode(x)

    u, pull = jax.vjp(encode, enc_p)
    m = jax.jacfwd(lambda u: state_to_units(cell1(h1, model.block_input(0, u))))(u)  # (S, n, n)
    (rows,) = jax.vmap(pull)(m.reshape(-1, m.shape[-1]))
    return jax.tree.map(lambda r: r.reshape(*m.shape[:2], *r.shape[1:]), rows)


def _spatial_loss(static: Any, loss_fn: LossFn, approx: str, params, eps, prev, x, y):
    """This step's loss with the previous states held fixed.

    ``eps`` is added to each new block state, so its gradient is ``dL_t/dh^l_t`` through
    the current step only. Returns the loss and, as auxiliary output, each block's input
    ``z`` (what a chunked rule needs).

    Under ``"spatial"`` the previous state's own contribution to the new state carries no
    gradient (``f(h, z) - f(0, z)`` is held constant: ``λ h_{t-1}`` for the LRU), as in
    the paper's spatial-backpropagation baseline.
    """
    model, head = eqx.combine(params, static)

    def advance(i: int, z: Array) -> tuple[State, Array]:
        cell, h = model.cells[i], prev[i]
        new = cell(h, z)
        if approx == "spatial":
            rest = cell(cell.init_state(), z)
            new = jax.tree.map(lambda f, r: lax.stop_gradient(f - r) + r, new, rest)
        return units_to_state(state_to_units(new) + eps[i], h), lax.stop_gradient(z)

    _, top, inputs = model.forward(x, advance)
    return loss_fn(head(top), y), inputs


def _time_major(tree: PyTree[Array]) -> PyTree[Array]:
    """Swap the leading (time, batch) axes of every leaf to (batch, time)."""
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


def _mix_time(blocks: Array, traces: PyTree[Array], param_units: PyTree) -> PyTree[Array]:
    """:func:`carry_traces` with a leading time axis on ``blocks`` and ``traces``."""
    return jax.vmap(lambda bl, tr: carry_traces(bl, tr, param_units))(blocks, traces)


def _scan_traces(blocks: Array, j_theta: PyTree[Array], trace0: PyTree[Array], units: PyTree):
    """Every ``trace_t = J_h,t ∘ trace_{t-1} + J_theta,t`` of a chunk by one associative scan.

    Args:
        blocks: ``(C, S, S, n)`` state-Jacobian blocks of each step.
        j_theta: immediate Jacobians, leaves ``(C, S, *W.shape)``.
        trace0: the trace before the chunk, leaves ``(S, *W.shape)``.
        units: the unit of every parameter entry.

    Returns:
        The traces after each step, leaves ``(C, S, *W.shape)``.
    """
    first = carry_traces(blocks[0], trace0, units)
    j_theta = jax.tree.map(lambda j, f: j.at[0].add(f), j_theta, first)

    def combine(earlier, later):
        a_i, b_i = earlier
        a_j, b_j = later
        s = a_i.shape[1]
        # Per unit, the S x S product a_j @ a_i, written out (S is 1 or 2).
        rows = [
            jnp.stack([sum(a_j[:, r, k] * a_i[:, k, c] for k in range(s)) for c in range(s)], 1)
            for r in range(s)
        ]
        a = jnp.stack(rows, 1)
        b = jax.tree.map(jnp.add, _mix_time(a_j, b_i, units), b_j)
        return a, b

    _, traces = lax.associative_scan(combine, (blocks, j_theta))
    return traces


def online_deep(approx: str = "full", *, chunk: int = 128) -> Learner:
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

    The paper's ablations are ``approx`` values:

    * ``"full"``: as above (the default).
    * ``"snap1"``: the traces of the recurrent cells only; the encoder gets its spatial
      gradient. This is the reference code's ``online_full`` (for diagonal blocks its
      ``online_snap1`` is the same rule), which has no encoder trace.
    * ``"truncated"``: no traces; the gradient through the current step, the previous
      states held fixed: one-step truncated BPTT (equal to ``tbptt(1)`` on the stack).
    * ``"spatial"``: as ``"truncated"``, and also without the gradient of the
      recurrence's own term ``f(h, z) - f(0, z)`` (``λ h_{t-1}`` for the LRU), so the
      eigenvalues learn nothing: the paper's spatial-backpropagation baseline.

    Two paths compute the same gradients. ``step`` streams, with memory constant in the
    sequence length. The whole-sequence path that :func:`rtrlx.sequence_grads` uses runs
    the stack forward, evaluates every step's local quantities and the spatial backprop for
    ``chunk`` steps at once (vectorised over time). A block whose cell's rule has a chunked
    form (the LRU's) gets the chunk's gradient and its trace after the chunk from it, a few
    GEMMs with no per-step trace; the other blocks and the encoder trace have the chunk's
    traces computed by ``lax.associative_scan``. Its memory grows with ``chunk``, not with
    the sequence. A block whose cell declares a closed-form trace
    (``cell.elementwise_rule()``, e.g. the LRU's complex trace) uses it when streaming.

    Args:
        approx: one of ``"full"``, ``"snap1"``, ``"truncated"``, ``"spatial"``.
        chunk: steps per chunk of the whole-sequence path.

    Returns:
        A :class:`Learner` for :class:`rtrlx.models.DeepRecurrent`; ``"full"`` is exact with
        one block.

    Raises:
        ValueError: for an unknown ``approx`` or a ``chunk`` below 1.
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
    if approx not in APPROXIMATIONS:
        raise ValueError(
            f"online_deep: approx must be one of {', '.join(APPROXIMATIONS)}; got {approx!r}."
        )
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"online_deep: chunk must be a positive int, got {chunk!r}.")
    traced = approx in ("full", "snap1")
    name = "online_deep" if approx == "full" else f"online_deep:{approx}"

    def rules_of(model: Any) -> list:
        """Each block's closed-form element-wise rule (None: the generic update)."""
        return [cell.elementwise_rule() if traced else None for cell in model.cells]

    def make_state(model: Any, rules: list) -> OnlineDeepState:
        """One stream's state; blocks with a rule keep its traces, the others the generic."""
        n = model.hidden_size
        traces = []
        for cell, rule in zip(model.cells if traced else (), rules, strict=False):
            if rule is not None:
                traces.append(rule.init())
                continue
            s = state_to_units(cell.init_state()).shape[0]
            params = eqx.filter(cell, eqx.is_inexact_array)
            traces.append(jax.tree.map(lambda w, s=s: jnp.zeros((s, *w.shape), w.dtype), params))
        encoder_trace = ()
        if approx == "full":
            s1 = state_to_units(model.cells[0].init_state()).shape[0]
            enc = eqx.filter(model.encoder, eqx.is_inexact_array)
            encoder_trace = jax.tree.map(lambda w: jnp.zeros((s1, n, *w.shape), w.dtype), enc)
        return OnlineDeepState(model.init_state(), tuple(traces), encoder_trace)

    def init(model, *, key=None, batch_size=None):
        del key
        model = _check(model)
        return batch_init(model, batch_size, lambda: make_state(model, rules_of(model)))

    def add_carried(model, g_model, deltas, carried, enc_carried, replaced=()):
        """The spatial gradient plus each trace's past part read out by its block's error.

        A block with an entry in ``replaced`` (a chunked rule's gradient, which holds the
        immediate part too) takes that gradient instead.
        """
        if not traced:
            return g_model
        cells_g = tuple(
            replaced[i]
            if i < len(replaced) and replaced[i] is not None
            else jax.tree.map(
                lambda g, tr, pu, d=d: g + _contract(d, tr, pu), gc, c, cell.param_units()
            )
            for i, (cell, gc, c, d) in enumerate(
                zip(model.cells, g_model.cells, carried, deltas, strict=True)
            )
        )
        g_model = eqx.tree_at(lambda m: m.cells, g_model, cells_g)
        if approx == "full":
            # Block 1's error (S, n) against the dense trace (S, n, *W.shape).
            enc_g = jax.tree.map(
                lambda g, tr: g + jnp.tensordot(deltas[0], tr, axes=((0, 1), (0, 1))),
                g_model.encoder,
                enc_carried,
            )
            g_model = eqx.tree_at(lambda m: m.encoder, g_model, enc_g)
        return g_model

    def step(model, head, loss_fn, state: OnlineDeepState, x, y):
        model = _check(model)
        batched = is_batched(model, state.hidden, x, name)
        if not batched:  # one stream is a batch of one
            state, x, y = jax.tree.map(lambda a: a[None], (state, x, y))
        params, static = eqx.partition((model, head), eqx.is_inexact_array)
        enc_units = _encoder_units(model.encoder, model.hidden_size)
        rules = rules_of(model)
        prev, traces = state.hidden[:-1], state.traces

        # 1. Forward through the step for the whole batch; each traced block advances its
        # trace (by its cell's closed-form rule when it has one).
        def advance(i: int, z: Array) -> tuple[State, tuple]:
            """Block ``i``'s step for the batch: ``(new state, (trace, carried, blocks))``."""
            cell, h, rule = model.cells[i], prev[i], rules[i]
            if not traced:
                return jax.vmap(cell)(h, z), (None, None, None)
            if rule is not None:
                new, trace = jax.vmap(rule.step)(traces[i], h, z)
                blocks = None
                if i == 0 and approx == "full":
                    blocks = jax.vmap(lambda h, z: _state_blocks(cell, h, z))(h, z)
                return new, (trace, None, blocks)
            cp, cs = eqx.partition(cell, eqx.is_inexact_array)
            units = cell.param_units()

            def one(h, z, trace):
                nu, j_theta, blocks = _unit_blocks(cell, cp, cs, state_to_units(h), z)
                past = carry_traces(blocks, trace, units)
                return units_to_state(nu, h), past, jax.tree.map(jnp.add, past, j_theta), blocks

            new, past, trace, blocks = jax.vmap(one)(h, z, traces[i])
            return new, (trace, past, blocks)

        new_blocks, u, aux = model.forward(x, advance, over=jax.vmap)
        new_traces, carried, blocks = zip(*aux, strict=True)
        new_traces = new_traces if traced else ()

        # 2. Spatial backprop through this step, on the batch mean (so the weights'
        # gradients are batched matmuls): the error reaching every block, with 1/B in it.
        def batch_loss(p, eps):
            def one(e, pr, x, y):
                return _spatial_loss(static, loss_fn, approx, p, e, pr, x, y)[0]

            return jnp.mean(jax.vmap(one)(eps, prev, x, y))

        eps = tuple(jnp.zeros_like(jax.vmap(state_to_units)(h)) for h in new_blocks)
        loss, (g_params, deltas) = jax.value_and_grad(batch_loss, argnums=(0, 1))(params, eps)
        g_model, g_head = g_params

        # 3. Each block's trace read out by its error, summed over the batch. A rule's
        # gradient replaces the spatial one (a block's parameters reach this step's loss
        # only through its new state, so the spatial gradient is the trace's immediate part).
        if traced:
            cells_g = []
            for i, (cell, gc, d) in enumerate(
                zip(model.cells, g_model.cells, deltas, strict=True)
            ):
                if rules[i] is not None:
                    cells_g.append(rules[i].grads(new_traces[i], d))
                    continue
                cells_g.append(
                    jax.tree.map(
                        lambda g, tr, pu, d=d: g + jnp.sum(expand_units(d, pu) * tr, axis=(0, 1)),
                        gc,
                        carried[i],
                        cell.param_units(),
                    )
                )
            g_model = eqx.tree_at(lambda m: m.cells, g_model, tuple(cells_g))
        new_enc = ()
        if approx == "full":
            enc_carried = jax.vmap(lambda bl, tr: carry_traces(bl, tr, enc_units))(
                blocks[0], state.encoder_trace
            )
            enc_g = jax.tree.map(
                lambda g, tr: g + jnp.tensordot(deltas[0], tr, axes=((0, 1, 2), (0, 1, 2))),
                g_model.encoder,
                enc_carried,
            )
            g_model = eqx.tree_at(lambda m: m.encoder, g_model, enc_g)
            jac = jax.vmap(lambda pr, x: _encoder_jacobian(model, pr, x))(prev, x)
            new_enc = jax.tree.map(jnp.add, enc_carried, jac)
        new_state = OnlineDeepState((*new_blocks, u), tuple(new_traces), new_enc)
        if not batched:
            new_state = jax.tree.map(lambda a: a[0], new_state)
        return new_state, loss, (g_model, g_head)

    def sequence(model, head, loss_fn, xs, ys, *, key):
        del key
        model = _check(model)
        params, static = eqx.partition((model, head), eqx.is_inexact_array)
        enc_units = _encoder_units(model.encoder, model.hidden_size)
        rules = rules_of(model)
        chunked = tuple(r is not None and r.chunk is not None for r in rules)
        # Per-step Jacobians are needed for blocks without a chunked rule and the encoder.
        needs_local = approx == "full" or (traced and not all(chunked))
        if xs.ndim == 2:  # one stream is a batch of one
            xs, ys = xs[:, None], ys[:, None]

        def over_batch(fn):
            """``fn`` of one stream at one step, mapped over (time, batch)."""
            return jax.vmap(jax.vmap(fn))

        def forward_blocks(hidden, xs):
            """The stack over a chunk, block by block: its new state and each block's past.

            The past is each block's states before every step, ``(C, batch, ...)``. Only
            the recurrent cells are scanned over time; the encoder, normalisations and GLUs
            run on the whole chunk at once (the chunk is known).
            """

            def advance(i, z):
                cell = model.cells[i]

                def one_step(h, z_t):
                    new = jax.vmap(cell)(h, z_t)
                    return new, (h, new)

                last, (before, after) = lax.scan(one_step, hidden[i], z)
                return after, (before, last)

            _, top, aux = model.forward(xs, advance, over=over_batch)
            prevs, lasts = zip(*aux, strict=True)
            return (*lasts, top[-1]), tuple(prevs)

        def run_chunk(state: OnlineDeepState, xs, ys):
            """One chunk of the batch: (new state, summed loss, summed gradients).

            Arrays are ``(C, batch, ...)``; the loss and gradients are the batch mean's.
            """
            last, prevs = forward_blocks(state.hidden, xs)
            j_thetas: Any = ()
            blocks: Any = ()
            enc_jac: Any = ()
            if needs_local:
                j_thetas, blocks, enc_jac = over_batch(
                    lambda p, x: _local(model, p, x, approx, chunked)
                )(prevs, xs)

            def total(p, eps):
                losses, inputs = over_batch(
                    lambda e, pr, x, y: _spatial_loss(static, loss_fn, approx, p, e, pr, x, y)
                )(eps, prevs, xs, ys)
                return jnp.sum(jnp.mean(losses, axis=1)), inputs

            eps = tuple(jax.vmap(jax.vmap(state_to_units))(h) for h in prevs)
            eps = jax.tree.map(jnp.zeros_like, eps)
            # deltas carry the batch mean's 1/batch, so contractions sum over the batch.
            (loss, inputs), (g_params, deltas) = jax.value_and_grad(
                total, argnums=(0, 1), has_aux=True
            )(params, eps)
            g_model, g_head = g_params
            if not needs_local:  # a chunked rule for every traced block
                j_thetas = (None,) * (len(model.cells) if traced else 0)

            def scan_traces(blocks, j, tr0, units):
                """The chunk's traces of every stream, ``(C, batch, ...)``."""
                fn = jax.vmap(lambda b, jj, t: _scan_traces(b, jj, t, units), out_axes=1)
                return fn(jnp.swapaxes(blocks, 0, 1), _time_major(j), tr0)

            traces, carried, replaced = [], [], []
            for i, (j, tr0, cell) in enumerate(
                zip(j_thetas, state.traces, model.cells[: len(j_thetas)], strict=True)
            ):
                if chunked[i]:
                    # The rule's chunked form: one set of GEMMs for the batch, no per-step
                    # trace.
                    rule = rules[i]
                    assert rule is not None and rule.chunk is not None
                    tr, g = rule.chunk(tr0, prevs[i], inputs[i], deltas[i])
                    traces.append(tr)
                    carried.append(None)
                    replaced.append(g)
                    continue
                all_t = scan_traces(blocks[i], j, tr0, cell.param_units())
                traces.append(jax.tree.map(lambda a: a[-1], all_t))
                # The carried parts summed over the chunk, each read out by its step's error.
                carried.append(jax.tree.map(jnp.subtract, all_t, j))
                replaced.append(None)
            enc_trace, enc_carried = (), ()
            if approx == "full":
                all_t = scan_traces(blocks[0], enc_jac, state.encoder_trace, enc_units)
                enc_trace = jax.tree.map(lambda a: a[-1], all_t)
                enc_carried = jax.tree.map(jnp.subtract, all_t, enc_jac)
            # Fold time and batch into the S axis so one contraction sums over all three.
            fold = jax.tree.map(lambda a: a.reshape(-1, *a.shape[3:]), (deltas, carried))
            deltas_f, carried_f = fold
            enc_f = jax.tree.map(lambda a: a.reshape(-1, *a.shape[3:]), enc_carried)
            g_model = add_carried(model, g_model, deltas_f, carried_f, enc_f, tuple(replaced))
            return OnlineDeepState(last, tuple(traces), enc_trace), loss, (g_model, g_head)

        steps, batch = xs.shape[:2]
        size = min(chunk, steps)
        whole, rest = divmod(steps, size)
        # Chunked rules keep their own trace layout, the other blocks the generic one.
        layout = [r if c else None for r, c in zip(rules, chunked, strict=True)]
        state = batch_init(model, batch, lambda: make_state(model, layout))
        zero = jax.tree.map(jnp.zeros_like, params)
        loss = jnp.zeros((), xs.dtype)

        def body(carry, start):
            state, loss, grads = carry
            xy = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, start, size), (xs, ys))
            state, chunk_loss, g = run_chunk(state, *xy)
            return (state, loss + chunk_loss, jax.tree.map(jnp.add, grads, g)), None

        split = whole * size
        carry = (state, loss, zero)
        (state, loss, grads), _ = lax.scan(body, carry, jnp.arange(0, split, size))
        if rest:
            _, chunk_loss, g = run_chunk(state, xs[split:], ys[split:])
            loss, grads = loss + chunk_loss, jax.tree.map(jnp.add, grads, g)
        return loss, grads

    def exact_on(model: Any) -> bool:
        return approx == "full" and isinstance(model, DeepRecurrent) and len(model.cells) == 1

    return Learner(init=init, step=step, sequence=sequence, name=name, exact_on=exact_on)
