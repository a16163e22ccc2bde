"""Unbiased Online Recurrent Optimization (UORO): a rank-one estimate of the influence."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ..cells._base import num_components, state_to_units, units_to_state
from ._base import (
    Learner,
    batch_init,
    check_cell,
    flatten_cell,
    is_batched,
    map_batch,
    readout_batch,
    split_stream_keys,
    stream_keys_init,
    unit_transition,
)


class UOROState(NamedTuple):
    """State of ``uoro()``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    h_tilde: Float[Array, "... S*hidden"]  # M_t ~ outer(h_tilde, theta_tilde)
    theta_tilde: Float[Array, "... P"]
    key: PRNGKeyArray  # one per stream (leading batch axis when batched), split every step


def uoro() -> Learner:
    """UORO: the influence matrix as one random outer product, O(n^2) per step, any cell.

    Keeps ``M_t ~ h~ θ~^T`` (a state-sized and a parameter-sized vector). Each step, with a
    vector ``ν`` of random signs,
    ``h~ <- ρ_0 J_h h~ + ρ_1 ν`` and ``θ~ <- θ~ / ρ_0 + (ν^T J_θ) / ρ_1``: the cross terms
    vanish in expectation, so ``E[h~ θ~^T] = M_t``. The scales
    ``ρ_0 = sqrt(|θ~| / |J_h h~|)`` and ``ρ_1 = sqrt(|ν^T J_θ| / |ν|)`` minimise the
    variance. One forward-mode product (``J_h h~``) and one reverse-mode product
    (``ν^T J_θ``) per step: the cost of about three steps of the cell. Unbiased, but with
    a variance that grows with the network; see ``rtrlx noise``.

    Returns:
        A :class:`Learner` (stochastic; unbiased) for every cell.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 8, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(8, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.uoro(), cell, head, rtrlx.losses.mse, jnp.ones((5, 2)),
        ...     jnp.zeros((5, 1)), key=jax.random.key(2))

    References:
        Tallec and Ollivier. Unbiased Online Recurrent Optimization. ICLR 2018.
        https://arxiv.org/abs/1702.05043
    """

    def init(cell, *, key=None, batch_size=None):
        check_cell(cell, "uoro")
        theta = flatten_cell(cell).theta
        size = num_components(cell) * cell.hidden_size

        def make():
            return cell.init_state(), jnp.zeros(size, theta.dtype), jnp.zeros_like(theta)

        hidden, h_tilde, theta_tilde = batch_init(cell, batch_size, make)
        return UOROState(hidden, h_tilde, theta_tilde, stream_keys_init(key, batch_size, "uoro"))

    def step(cell, head, loss_fn, state: UOROState, x, y):
        check_cell(cell, "uoro")
        batched = is_batched(cell, state.hidden, x, "uoro", head=head, y=y)
        key, keys = split_stream_keys(state.key, batched)
        flat = flatten_cell(cell)

        def one(hidden, h_tilde, theta_tilde, key, x):
            f = unit_transition(flat, hidden)
            units = state_to_units(hidden)
            new_units, jh_h = jax.jvp(
                lambda u: f(flat.theta, u, x), (units,), (h_tilde.reshape(units.shape),)
            )
            nu = jax.random.rademacher(key, units.shape, units.dtype)
            _, pull = jax.vjp(lambda th: f(th, units, x), flat.theta)
            (nu_j_theta,) = pull(nu)
            tiny = jnp.finfo(units.dtype).tiny
            rho0 = jnp.sqrt((jnp.linalg.norm(theta_tilde) + tiny) / (jnp.linalg.norm(jh_h) + tiny))
            rho1 = jnp.sqrt((jnp.linalg.norm(nu_j_theta) + tiny) / (jnp.linalg.norm(nu) + tiny))
            h_tilde = (rho0 * jh_h + rho1 * nu).reshape(-1)
            theta_tilde = theta_tilde / rho0 + nu_j_theta / rho1
            return units_to_state(new_units, hidden), h_tilde, theta_tilde

        hidden, h_tilde, theta_tilde = map_batch(
            one, batched, state.hidden, state.h_tilde, state.theta_tilde, keys, x
        )
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
        delta = delta.reshape(*delta.shape[:-2], -1)
        weight = jnp.sum(delta * h_tilde, axis=-1, keepdims=True)  # (dL/dh · h~) per stream
        g_flat = jnp.sum(weight * theta_tilde, axis=0) if batched else weight * theta_tilde
        g_cell = jax.tree.map(jnp.add, flat.unravel(g_flat), g_direct)
        return UOROState(hidden, h_tilde, theta_tilde, key), loss, (g_cell, g_head)

    return Learner(init=init, step=step, name="uoro", independent_streams=True, stochastic=True)
