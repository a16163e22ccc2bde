"""Exact real-time recurrent learning for any cell."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._types import State
from ..cells._base import num_components, state_to_units, units_to_state
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


class RTRLState(NamedTuple):
    """State of ``rtrl()``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    influence: Float[Array, "... S*hidden P"]  # M_t = d h_t / d theta, unit view flattened


def rtrl() -> Learner:
    """Exact real-time recurrent learning (Williams and Zipser 1989), for any cell.

    Carries the influence matrix ``M_t = dh_t/dθ`` (state size x parameters) forward with
    ``M_t = J_h M_{t-1} + J_θ`` and emits ``dL_t/dθ = dL_t/dh_t · M_t`` at every step. The
    state Jacobian ``J_h`` is built from forward-mode products (one per state entry) and the
    immediate Jacobian ``J_θ`` from reverse-mode products (one per state entry); the
    product ``J_h M`` is a single dense matmul, the O(n^4) heart of RTRL. Memory is
    O(n · parameters) per stream, constant in the sequence length.

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
        batched = is_batched(cell, state.hidden, x, "rtrl")
        flat = flatten_cell(cell)

        def one(hidden, influence, x, y):
            f = unit_transition(flat, hidden)
            units = state_to_units(hidden)
            shape = units.shape
            new_units, pullback = jax.vjp(lambda th: f(th, units, x), flat.theta)
            j_theta = jax.vmap(pullback)(
                jnp.eye(units.size, dtype=units.dtype).reshape(-1, *shape)
            )[0]
            j_h = jax.jacfwd(lambda u: f(flat.theta, u, x))(units).reshape(units.size, units.size)
            influence = j_h @ influence + j_theta
            new_hidden = units_to_state(new_units, hidden)
            loss, g_direct, g_head, delta = readout(cell, head, loss_fn, new_hidden, y)
            return new_hidden, influence, loss, delta.reshape(-1) @ influence + g_direct, g_head

        hidden, influence, loss, g_cell, g_head = map_batch(
            one, batched, state.hidden, state.influence, x, y
        )
        loss, g_cell, g_head = batch_mean((loss, g_cell, g_head), batched)
        return RTRLState(hidden, influence), loss, (flat.unravel(g_cell), g_head)

    return Learner(init=init, step=step, name="rtrl", exact_on=lambda cell: True)
