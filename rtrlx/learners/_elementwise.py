"""The element-wise influence update shared by ``diag_rtrl()`` and ``snap(1)``.

Every parameter entry drives one unit (``cell.param_units()``). Element-wise RTRL keeps, for
each entry, only its influence on the ``S`` state components of that unit, so the trace has
the shape of the parameters with a leading ``S`` axis and is updated in the parameters' own
layout: ``trace[a] <- sum_b J_h[a, b, unit] * trace[b] + J_theta[a]``, all element-wise. No
gather, scatter or small matmul sits in the hot loop, which is what makes it run at the speed
of the cell's own forward and backward pass.
"""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, PyTree

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import AbstractCell, state_to_units, units_to_state
from ._base import Learner, batch_init, check_cell, is_batched, readout_batch, zeros_grads
from ._structure import diagonal, require_unit_owner, unit_owner
from ._structure import require_diagonal as require_declared_diagonal
from ._unit_jacobian import kron_selection, kron_unit_blocks


class TraceState(NamedTuple):
    """State of ``diag_rtrl()`` and ``snap(1)``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    # For every trainable array W of the cell, an array (S, *W.shape) (with a leading batch
    # axis when batched): trace[a][i] = d h_t[a, unit(i)] / d W[i].
    trace: PyTree[Float[Array, "..."]]


def expand_units(values: Array, units: np.ndarray) -> Array:
    """``values[..., units]`` for a unit-index array, as a broadcast when its layout allows.

    Args:
        values: an array ``(..., hidden)``.
        units: a parameter's unit index (from ``param_units``), any shape.

    Returns:
        An array ``(..., *units.shape)``.
    """
    lead = values.shape[:-1]
    n = values.shape[-1]
    if units.ndim >= 1 and units.shape[0] % n == 0:
        blocks = units.shape[0] // n
        rows = np.tile(np.arange(n), blocks).reshape((-1,) + (1,) * (units.ndim - 1))
        if np.array_equal(units, np.broadcast_to(rows, units.shape)):
            if blocks == 1:
                out = values.reshape(*lead, n, *(1,) * (units.ndim - 1))
                return jnp.broadcast_to(out, (*lead, *units.shape))
            out = values.reshape(*lead, 1, n, *(1,) * (units.ndim - 1))
            out = jnp.broadcast_to(out, (*lead, blocks, n, *units.shape[1:]))
            return out.reshape(*lead, *units.shape)
    return values[..., units]


def _row_units(units: np.ndarray, n: int) -> int | np.ndarray | None:
    """How a parameter's units follow its first axis.

    Returns:
        A block count when they are ``tile(arange(n))`` along it, the row-to-unit array when
        they vary along that axis only, or None.
    """
    units = np.asarray(units)
    if units.ndim == 0:
        return None
    rows = units.reshape(units.shape[0], -1)[:, 0]
    if not np.array_equal(
        units, np.broadcast_to(rows.reshape((-1,) + (1,) * (units.ndim - 1)), units.shape)
    ):
        return None
    if rows.size % n == 0 and np.array_equal(rows, np.tile(np.arange(n), rows.size // n)):
        return rows.size // n
    return rows


def carry_traces(blocks: Array, traces: PyTree[Array], param_units: PyTree) -> PyTree[Array]:
    """``sum_b J_h[a, b, unit] * trace[b]`` for every trace: the past carried one step.

    Written as explicit element-wise products over the ``S`` rows: the same mix as
    ``jnp.sum(blocks * trace[None], axis=1)`` ran 15x slower under XLA:CPU.

    Args:
        blocks: ``(S, S, n)`` unit blocks of the state Jacobian.
        traces: arrays ``(S, *W.shape)``.
        param_units: the unit of every entry of each ``W`` (``param_units()``).

    Returns:
        Arrays shaped like ``traces``.
    """
    s = blocks.shape[0]

    def carry(trace, units):
        mix = expand_units(blocks, np.asarray(units))  # (S, S, *W.shape)
        return jnp.stack([sum(mix[a, b] * trace[b] for b in range(s)) for a in range(s)])

    return jax.tree.map(carry, traces, param_units)


def _unit_blocks(cell: AbstractCell, params: Any, static: Any, units: Array, x: Array):
    """New unit view, ``J_theta`` rows (pytree, leading ``S``) and ``J_h`` blocks ``(S, S, n)``.

    ``blocks[a, b, u] = d h'[a, u] / d h[b, u]``: the unit-diagonal of the state Jacobian.
    """
    s, n = units.shape
    like = cell.init_state()

    def f(p, u):
        return state_to_units(eqx.combine(p, static)(units_to_state(u, like), x))

    # Every parameter drives one unit, so pulling back "component a of every unit" gives
    # d h'[a, unit(i)] / d theta[i] for every entry i at once: S reverse products in all.
    rows = jnp.broadcast_to(jnp.eye(s, dtype=units.dtype)[:, :, None], (s, s, n))
    if diagonal(cell):
        # With a diagonal recurrence the same pullbacks give the unit blocks of J_h too.
        new_units, pull = jax.vjp(f, params, units)
        j_theta, blocks = jax.vmap(pull)(rows)
    else:
        new_units, pull = jax.vjp(lambda p: f(p, units), params)
        (j_theta,) = jax.vmap(pull)(rows)
        sel = kron_selection(cell)
        if sel is not None:  # O(n) from the pre-activations, checked against forward mode
            blocks = kron_unit_blocks(eqx.combine(params, static), units, x, sel)
        else:
            jac = jax.jacfwd(lambda u: f(params, u))(units)  # (S, n, S, n)
            blocks = jnp.diagonal(jac, axis1=1, axis2=3)  # (S, S, n)
    return new_units, j_theta, blocks


def elementwise_rtrl(name: str, require_diagonal: bool, chunk: int = 64) -> Learner:
    """Element-wise RTRL: exact when ``cell.diagonal``, SnAp-1 on any other cell.

    On a whole known sequence, a cell whose rule has a ``chunk`` form (the LRU) is run
    ``chunk`` steps at a time by it; otherwise, and when streaming, step by step.
    """

    def checked(cell: AbstractCell) -> tuple[AbstractCell, Any]:
        check_cell(cell, name)
        require_declared_diagonal(cell, name)
        if require_diagonal and not cell.diagonal:
            raise UnsupportedCellError(
                f"{name}: {type(cell).__name__} has a dense recurrence (cell.diagonal is "
                "False), so element-wise RTRL would not be exact on it. Use rtrlx.snap(1) for "
                "the element-wise approximation, or rtrlx.rtrl() for the exact gradient. "
                "diag_rtrl() is exact on LRU, RTU and ELSTM."
            )
        require_unit_owner(cell, name)
        units = jax.tree.map(np.asarray, cell.param_units())
        return cell, units

    def init(cell, *, key=None, batch_size=None):
        del key
        cell, _ = checked(cell)
        s = state_to_units(cell.init_state()).shape[0]
        params = eqx.filter(cell, eqx.is_inexact_array)
        rule = cell.elementwise_rule() if diagonal(cell) else None

        def make():
            if rule is not None:
                return TraceState(cell.init_state(), rule.init())
            trace = jax.tree.map(lambda w: jnp.zeros((s, *w.shape), w.dtype), params)
            return TraceState(cell.init_state(), trace)

        return batch_init(cell, batch_size, make)

    def step(cell, head, loss_fn, state: TraceState, x, y):
        cell, param_units = checked(cell)
        batched = is_batched(cell, state.hidden, x, name, head=head, y=y)
        params, static = eqx.partition(cell, eqx.is_inexact_array)
        rule = cell.elementwise_rule() if diagonal(cell) else None
        if rule is not None:  # the cell's own closed form
            advance_rule = jax.vmap(rule.step) if batched else rule.step
            hidden, trace = advance_rule(state.trace, state.hidden, x)
            loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
            g_cell = jax.tree.map(jnp.add, g_direct, rule.grads(trace, delta))
            return TraceState(hidden, trace), loss, (g_cell, g_head)

        def advance(hidden, trace, x):
            units = state_to_units(hidden)
            new_units, j_theta, blocks = _unit_blocks(cell, params, static, units, x)

            carried = carry_traces(blocks, trace, param_units)
            trace = jax.tree.map(jnp.add, carried, j_theta)
            return units_to_state(new_units, hidden), trace

        advance_all = jax.vmap(advance) if batched else advance
        hidden, trace = advance_all(state.hidden, state.trace, x)
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
        # delta already carries the batch mean's 1/B, so contracting sums over the batch.
        axes = (0, 1) if batched else (0,)

        def contract(tr, pu, g):
            rows = _row_units(pu, delta.shape[-1])
            if rows is None:
                return g + jnp.sum(expand_units(delta, pu) * tr, axis=axes)
            # Units vary along the first axis only: one contraction over batch and S, which
            # XLA:CPU runs 25x faster than the broadcast product and sum (GRU, n = 128).
            d = jnp.tile(delta, rows) if isinstance(rows, int) else delta[..., rows]
            return g + jnp.einsum("bsr,bsr...->r..." if batched else "sr,sr...->r...", d, tr)

        g_cell = jax.tree.map(contract, trace, param_units, g_direct)
        return TraceState(hidden, trace), loss, (g_cell, g_head)

    def sequence(cell, head, loss_fn, xs, ys, *, key):
        """Chunks of ``chunk`` steps by the cell's ``rule.chunk``; None without one."""
        del key
        cell, _ = checked(cell)
        rule = cell.elementwise_rule() if diagonal(cell) else None
        if rule is None or rule.chunk is None:
            return None
        if xs.ndim == 2:  # one stream is a batch of one
            xs, ys = xs[:, None], ys[:, None]
        steps, batch = xs.shape[:2]

        def lead(a):
            return jnp.broadcast_to(a, (batch, *a.shape))

        dtype = jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype
        carry = (
            jax.tree.map(lead, cell.init_state()),
            jax.tree.map(lead, rule.init()),
            jnp.zeros((), dtype),
            zeros_grads(cell, head),
        )

        def run(carry, xy):
            hidden, trace, total_loss, total = carry
            xs_c, ys_c = xy

            def forward(h, x):
                new = jax.vmap(cell)(h, x)
                return new, (h, new)

            hidden, (prev, hs) = lax.scan(forward, hidden, xs_c)
            loss, g_direct, g_head, deltas = jax.vmap(
                lambda h, y: readout_batch(cell, head, loss_fn, h, y, True)
            )(hs, ys_c)
            assert rule.chunk is not None
            trace, g_cell = rule.chunk(trace, prev, xs_c, deltas)
            g_cell = jax.tree.map(lambda g, d: g + jnp.sum(d, axis=0), g_cell, g_direct)
            g_head = jax.tree.map(lambda g: jnp.sum(g, axis=0), g_head)
            total = jax.tree.map(jnp.add, total, (g_cell, g_head))
            return (hidden, trace, total_loss + jnp.sum(loss), total), None

        full = steps // chunk * chunk
        if full:
            # Slices taken inside the loop: a reshaped copy of the inputs would be memory
            # that grows with the sequence.
            def piece(carry, start):
                xy = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, start, chunk), (xs, ys))
                return run(carry, xy)

            carry, _ = lax.scan(piece, carry, jnp.arange(0, full, chunk))
        if steps > full:
            carry, _ = run(carry, (xs[full:], ys[full:]))
        return carry[2], carry[3]

    def exact_on(cell: AbstractCell) -> bool:
        return diagonal(cell) and unit_owner(cell) is not None

    return Learner(
        init=init,
        step=step,
        sequence=sequence,
        name=name,
        exact_on=exact_on,
        independent_streams=True,
    )
