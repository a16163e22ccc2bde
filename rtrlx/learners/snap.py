"""SnAp-n: the influence matrix kept only where it is non-zero within n steps."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import AbstractCell, num_components, state_to_units, units_to_state
from ._base import (
    Learner,
    batch_init,
    check_cell,
    flatten_cell,
    is_batched,
    map_batch,
    readout_batch,
    unit_transition,
)
from ._elementwise import elementwise_rtrl
from ._structure import diagonal, require_connectivity, require_diagonal, require_unit_owner


class SnApState(NamedTuple):
    """State of ``snap(n)`` and ``diag_rtrl()``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    # trace[u, (a, j), p] = d h_t[a, nbr[u, j]] / d theta[u's p-th parameter]: the kept
    # entries of the influence matrix, grouped by the unit each parameter drives.
    trace: Float[Array, "... hidden S*d q"]


class _Layout(NamedTuple):
    perm: np.ndarray  # flat parameter indices sorted by unit, shape (P,)
    per_unit: int  # q, parameters per unit
    neighbours: np.ndarray  # (n, d) units each unit's parameters reach; column 0 is the unit
    valid: np.ndarray  # (n, d) False where a row of `neighbours` is padding


def _layout(cell: AbstractCell, order: int, name: str) -> _Layout:
    require_diagonal(cell, name)
    n = cell.hidden_size
    units = require_unit_owner(cell, name)
    counts = np.bincount(units, minlength=n)
    if counts.size != n or not np.all(counts == counts[0]):
        raise UnsupportedCellError(
            f"{name}: {type(cell).__name__}.param_units() does not give every unit the same "
            "number of parameters; SnAp groups parameters by unit. Fix param_units() or use "
            "rtrl()."
        )
    perm = np.argsort(units, kind="stable")
    if order == 1:
        neighbours = np.arange(n)[:, None]
        valid = np.ones((n, 1), dtype=bool)
    else:
        conn = require_connectivity(cell, name)
        reach = [[u] + [k for k in np.flatnonzero(conn[:, u]) if k != u] for u in range(n)]
        d = max(len(r) for r in reach)
        neighbours = np.array([r + [r[0]] * (d - len(r)) for r in reach])
        valid = np.array([[True] * len(r) + [False] * (d - len(r)) for r in reach])
    return _Layout(perm, int(counts[0]), neighbours, valid)


def sparse_rtrl(order: int, name: str) -> Learner:
    """The learner behind ``snap(2)`` (SnAp-1 uses the element-wise core instead)."""

    def layout(cell: AbstractCell) -> _Layout:
        check_cell(cell, name)
        return _layout(cell, order, name)

    def init(cell, *, key=None, batch_size=None):
        del key
        lay = layout(cell)
        n, d = lay.neighbours.shape
        rows = num_components(cell) * d
        dtype = flatten_cell(cell).theta.dtype

        def make():
            return SnApState(cell.init_state(), jnp.zeros((n, rows, lay.per_unit), dtype))

        return batch_init(cell, batch_size, make)

    def step(cell, head, loss_fn, state: SnApState, x, y):
        lay = layout(cell)
        batched = is_batched(cell, state.hidden, x, name, head=head, y=y)
        flat = flatten_cell(cell)
        nbr, valid = lay.neighbours, lay.valid
        n, d = nbr.shape
        diag = diagonal(cell)

        def one(hidden, trace, x):
            f = unit_transition(flat, hidden)
            units = state_to_units(hidden)
            s = units.shape[0]
            # Row a of `rows` sums the new state's component a over all units: since every
            # parameter drives one unit, its pullback is the immediate Jacobian J_theta[a].
            rows = jnp.broadcast_to(jnp.eye(s, dtype=units.dtype)[:, :, None], (s, s, n))
            if diag:
                new_units, pull = jax.vjp(lambda th, u: f(th, u, x), flat.theta, units)
                j_theta, j_units = jax.vmap(pull)(rows)
                blocks = j_units.transpose(2, 0, 1)  # [u, a, b] = d h'[a, u] / d h[b, u]
            else:
                new_units, pull = jax.vjp(lambda th: f(th, units, x), flat.theta)
                (j_theta,) = jax.vmap(pull)(rows)
                jac = jax.jacfwd(lambda u: f(flat.theta, u, x))(units).transpose(1, 3, 0, 2)
                kept = jac[nbr[:, :, None], nbr[:, None, :]]  # (n, d, d, S, S)
                blocks = kept.transpose(0, 3, 1, 4, 2).reshape(n, s * d, s * d)
                row_mask = np.repeat(valid[:, None, :], s, axis=1).reshape(n, s * d, 1)
                blocks = jnp.where(row_mask, blocks, jnp.zeros((), blocks.dtype))
            immediate = j_theta[:, lay.perm].reshape(s, n, lay.per_unit).transpose(1, 0, 2)
            trace = jnp.matmul(blocks, trace)
            trace = trace.reshape(n, s, d, lay.per_unit).at[:, :, 0, :].add(immediate)
            trace = trace.reshape(n, s * d, lay.per_unit)
            return units_to_state(new_units, hidden), trace

        hidden, trace = map_batch(one, batched, state.hidden, state.trace, x)
        # The batch-mean loss and gradients at once; delta carries the mean's 1/B, so one
        # contraction over the batch and the kept rows gives the cell's gradient, with no
        # gradient vector per stream.
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
        s = delta.shape[-2]
        # kept[..., u, a, j] = delta[..., a, nbr[u, j]]: (..., n, S, d)
        kept = jnp.moveaxis(delta[..., nbr], -3, -2)
        kept = jnp.where(valid[:, None, :], kept, 0.0).reshape(*kept.shape[:-3], n, s * d)
        spec = "buk,bukq->uq" if batched else "uk,ukq->uq"
        g_units = jnp.einsum(spec, kept, trace)
        g_cell = g_units.reshape(-1)[np.argsort(lay.perm)] + ravel_pytree(g_direct)[0]
        return SnApState(hidden, trace), loss, (flat.unravel(g_cell), g_head)

    def exact_on(cell: AbstractCell) -> bool:
        try:
            _layout(cell, order, name)
        except UnsupportedCellError:
            return False
        if diagonal(cell):
            return True
        return order >= 2 and bool(np.all(cell.connectivity()))

    return Learner(init=init, step=step, name=name, exact_on=exact_on, independent_streams=True)


def snap(n: int = 1) -> Learner:
    """SnAp-n: RTRL with the influence matrix restricted to entries reachable in n steps.

    Each parameter drives one unit directly (``param_units``). SnAp-1 keeps, for every
    parameter, only the influence on its own unit's state; SnAp-2 also keeps its influence
    on the units that read that unit (``connectivity``). Nothing is stored as a masked dense
    matrix: SnAp-1 keeps an ``S x`` copy of the parameters' shapes and updates it
    element-wise (the same core as :func:`diag_rtrl`); SnAp-2 keeps the entries per unit
    (``hidden x (S·d) x params-per-unit``, ``d`` the largest neighbourhood).
    On cells with diagonal recurrence (LRU, RTU, ELSTM) SnAp-1 is
    exact; on dense cells it is a biased approximation, and SnAp-2 on a fully connected cell
    keeps everything and equals RTRL. Sparse cells (``Elman(density=...)``) are where
    SnAp-2 pays off.

    Args:
        n: the number of steps, 1 or 2.

    Returns:
        A :class:`Learner`.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.snap(1), cell, head, rtrlx.losses.mse, jnp.ones((5, 2)), jnp.zeros((5, 1)))

    References:
        Menick, Elsen, Evci, Osindero, Simonyan, Graves. Practical Real Time Recurrent
        Learning with a Sparse Approximation. ICLR 2021. https://arxiv.org/abs/2006.07232
    """
    if isinstance(n, bool) or n not in (1, 2):
        raise ValueError(f"snap(n): n must be 1 or 2, got {n!r}.")
    if n == 1:
        return elementwise_rtrl("snap:1", require_diagonal=False)
    return sparse_rtrl(n, f"snap:{n}")
