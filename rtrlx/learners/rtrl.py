"""Exact real-time recurrent learning for any cell."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._types import State
from ..cells._base import AbstractCell, num_components, state_to_units, units_to_state
from ._base import (
    Learner,
    batch_init,
    batch_mean,
    check_cell,
    flatten_cell,
    is_batched,
    map_batch,
    readout,
    unit_transition,
)
from ._structure import unit_owner


class RTRLState(NamedTuple):
    """State of ``rtrl()``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    influence: Float[Array, "... S*hidden P"]  # M_t = d h_t / d theta, unit view flattened


def _immediate_layout(cell: AbstractCell, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the immediate Jacobian ``J_theta`` can be non-zero, for a unit-local cell.

    Returns:
        ``(owner, index)``: the unit of every flat parameter, and for every (component,
        parameter) pair the flat position of ``d h[component, owner] / d theta`` in the
        influence matrix; None when the cell is not unit-local, or its ``param_units()``
        declaration does not hold at a random point (``J_theta`` is then dense).
    """
    owner = unit_owner(cell)
    if owner is None:
        return None
    s = num_components(cell)
    rows = np.arange(s)[:, None] * cell.hidden_size + owner[None, :]
    return owner, (rows * size + np.arange(size)[None, :]).reshape(-1)


def rtrl() -> Learner:
    """Exact real-time recurrent learning (Williams and Zipser 1989), for any cell.

    Carries the influence matrix ``M_t = dh_t/dθ`` (state size x parameters) forward with
    ``M_t = J_h M_{t-1} + J_θ`` and emits ``dL_t/dθ = dL_t/dh_t · M_t`` at every step. The
    state Jacobian ``J_h`` is built from forward-mode products (one per state entry). On a
    unit-local cell (``cell.unit_local``, every cell in rtrlx but the influence-balancing
    system and ``DeepRecurrent``) each parameter moves only its own unit within a step, so
    ``J_θ`` has one non-zero per state component and parameter: it comes from ``S``
    reverse-mode products and is scattered into ``M``; otherwise it is dense, from one
    reverse product per state entry. The cell's declaration (``unit_local`` and
    ``param_units()``) is checked once against its own derivatives at a random point; a cell
    that declares nothing usable, or declares it wrongly, gets the dense path, which is exact
    on every cell. The product ``J_h M`` is a single dense matmul, the
    O(n^4) heart of RTRL, with the row ``δ_t J_h`` stacked on it so that the gradient's part
    through the past comes out of the same pass over ``M``. Memory is O(n · parameters) per
    stream, constant in the sequence length.

    Returns:
        A :class:`Learner` that is exact on every cell.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> learner = rtrlx.rtrl()
        >>> state = learner.init(cell)
        >>> state, loss, (g_cell, g_head) = learner.step(
        ...     cell, head, rtrlx.losses.mse, state, jnp.ones(2), jnp.zeros(1))
        >>> state.influence.shape  # (state entries, parameters)
        (4, 96)

    References:
        Williams and Zipser. A learning algorithm for continually running fully recurrent
        neural networks. Neural Computation 1989. https://doi.org/10.1162/neco.1989.1.2.270
    """

    def init(cell, *, key=None, batch_size=None):
        del key
        check_cell(cell, "rtrl")
        flat = flatten_cell(cell)
        size = num_components(cell) * cell.hidden_size

        def make():
            return RTRLState(
                cell.init_state(), jnp.zeros((size, flat.theta.size), flat.theta.dtype)
            )

        return batch_init(cell, batch_size, make)

    def step(cell, head, loss_fn, state: RTRLState, x, y):
        check_cell(cell, "rtrl")
        batched = is_batched(cell, state.hidden, x, "rtrl", head=head, y=y)
        flat = flatten_cell(cell)
        scatter = _immediate_layout(cell, flat.theta.size)

        def one(hidden, influence, x, y):
            f = unit_transition(flat, hidden)
            units = state_to_units(hidden)
            s, n = units.shape
            new_units, pullback = jax.vjp(lambda th: f(th, units, x), flat.theta)
            if scatter is None:  # dense J_theta: one pullback per state entry
                cotangents = jnp.eye(units.size, dtype=units.dtype).reshape(-1, s, n)
            else:  # unit-local: pulling back "component a of every unit" gives row a at once
                cotangents = jnp.broadcast_to(jnp.eye(s, dtype=units.dtype)[:, :, None], (s, s, n))
            (j_theta,) = jax.vmap(pullback)(cotangents)
            j_h = jax.jacfwd(lambda u: f(flat.theta, u, x))(units).reshape(units.size, units.size)
            new_hidden = units_to_state(new_units, hidden)
            loss, g_direct, g_head, delta = readout(cell, head, loss_fn, new_hidden, y)
            delta = delta.reshape(-1)
            # One pass over M_{t-1} gives both J_h M_{t-1} and the gradient's part through the
            # past, delta J_h M_{t-1}: the influence matrix is read once per step, not twice.
            carried = jnp.concatenate([j_h, (delta @ j_h)[None]]) @ influence
            if scatter is None:
                influence = carried[:-1] + j_theta
                g_now = delta @ j_theta
            else:
                owner, index = scatter
                influence = (
                    carried[:-1]
                    .reshape(-1)
                    .at[index]
                    .add(j_theta.reshape(-1), unique_indices=True)
                    .reshape(influence.shape)
                )
                g_now = jnp.sum(delta.reshape(s, n)[:, owner] * j_theta, axis=0)
            return new_hidden, influence, loss, carried[-1] + g_now + g_direct, g_head

        hidden, influence, loss, g_cell, g_head = map_batch(
            one, batched, state.hidden, state.influence, x, y
        )
        loss, g_cell, g_head = batch_mean((loss, g_cell, g_head), batched)
        return RTRLState(hidden, influence), loss, (flat.unravel(g_cell), g_head)

    return Learner(
        init=init, step=step, name="rtrl", exact_on=lambda cell: True, independent_streams=True
    )
