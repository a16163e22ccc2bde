"""Evolution strategies as a learner: forward passes only, in windows of ``k`` steps."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._tree import reset_where
from .._types import State
from ..es import ESState, Estimator, antithetic, past_descent
from ._base import (
    Learner,
    batch_init,
    check_cell,
    flatten_cell,
    is_batched,
    map_batch,
    readout_batch,
    zeros_grads,
)


class ESLearnerState(NamedTuple):
    """State of an ES learner: the network, its perturbed copies and the open window."""

    hidden: State  # the unperturbed state; leaves (hidden,) or (batch, hidden)
    copies: State  # the 2n perturbed copies' states: leaves (2n, [batch,] hidden)
    losses: Float[Array, " 2n"]  # each copy's loss summed over the open window
    rows: Float[Array, "n P"]  # the window's perturbation directions
    count: Int[Array, ""]  # steps taken in the open window
    es: ESState  # the estimator's key, previous estimate and count


def es(
    pairs: int, *, window: int = 50, sigma: float = 0.01, estimator: str = "antithetic"
) -> Learner:
    """Evolution strategies over windows of ``window`` steps: no backward pass, any cell.

    The learner runs the network and ``2 pairs`` copies whose cell parameters are perturbed
    by ``+- sigma d_i`` along the window's directions, all from the state the window began
    with, and sums each copy's loss (batch mean) over the window. At the window's last step
    the slopes ``(L(theta + sigma d_i) - L(theta - sigma d_i)) / (2 sigma)`` give the
    estimator's gradient of the window's summed loss with respect to the cell parameters
    (emitted then, as ``tbptt`` emits a window's gradient); the readout's gradient is exact
    at every step. Then the copies restart from the network's state and the next window's
    directions are drawn. Memory: the copies' states and the directions, ``O(pairs P)``,
    constant in the sequence length. The cell is only ever called, never differentiated.

    Args:
        pairs: antithetic pairs ``n``.
        window: steps per estimate ``k``.
        sigma: the perturbation scale.
        estimator: ``"antithetic"`` (plain ES) or ``"past_descent"`` (arXiv 1910.05268:
            the previous window's estimate as the surrogate direction).

    Returns:
        A stochastic :class:`Learner` (never exact).

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.learners.es(8, window=10), cell, head, rtrlx.losses.mse,
        ...     jnp.ones((10, 2)), jnp.zeros((10, 1)), key=jax.random.key(2))

    References:
        Salimans, Ho, Chen, Sidor, Sutskever. Evolution Strategies as a Scalable
        Alternative to Reinforcement Learning. 2017. https://arxiv.org/abs/1703.03864

        Meier, Mujika, Gauy, Steger. Improving Gradient Estimation in Evolutionary
        Strategies With Past Descent Directions. 2019. https://arxiv.org/abs/1910.05268
    """
    makers = {"antithetic": antithetic, "past_descent": past_descent}
    if estimator not in makers:
        raise ValueError(f"es: unknown estimator {estimator!r}; valid: {', '.join(makers)}.")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"es: window must be a positive integer, got {window!r}.")
    est: Estimator = makers[estimator](pairs, sigma)
    name = f"{'es_pd' if estimator == 'past_descent' else 'es'}:{pairs}"

    def init(cell, *, key=None, batch_size=None):
        check_cell(cell, name)
        theta = flatten_cell(cell).theta
        if key is None:
            key = jax.random.key(0)
        state = est.init(theta, key=key)
        hidden = batch_init(cell, batch_size, cell.init_state)
        return ESLearnerState(
            hidden=hidden,
            copies=_copies(hidden, 2 * pairs),
            losses=jnp.zeros(2 * pairs, theta.dtype),
            rows=est.directions(theta, state),
            count=jnp.zeros((), jnp.int32),
            es=state,
        )

    def step(cell, head, loss_fn, state: ESLearnerState, x, y):
        check_cell(cell, name)
        batched = is_batched(cell, state.hidden, x, name, head=head, y=y)
        flat = flatten_cell(cell)
        hidden = map_batch(cell, batched, state.hidden, x)
        loss, _, g_head, _ = readout_batch(cell, head, loss_fn, hidden, y, batched)
        signs = jnp.concatenate([jnp.ones(pairs), -jnp.ones(pairs)]).astype(flat.theta.dtype)
        thetas = flat.theta[None, :] + sigma * signs[:, None] * jnp.concatenate(
            [state.rows, state.rows]
        )

        def copy_step(theta, h):
            c = flat.rebuild(theta)
            h = map_batch(c, batched, h, x)
            out = map_batch(lambda s: head(c.features(s)), batched, h)
            losses = map_batch(loss_fn, batched, out, y)
            return h, jnp.mean(losses) if batched else losses

        copies, losses = jax.vmap(copy_step)(thetas, state.copies)
        losses = state.losses + losses
        full = state.count == window - 1

        def close(_):  # the window's estimate, and the next window's directions
            g, new_es = _estimate(est, losses, state.rows, state.es, sigma, pairs)
            return g, new_es, est.directions(flat.theta, new_es)

        def keep_open(_):
            return jnp.zeros_like(flat.theta), state.es, state.rows

        g_flat, new_es, rows = jax.lax.cond(full, close, keep_open, None)
        new_state = ESLearnerState(
            hidden=hidden,
            copies=jax.tree.map(
                lambda fresh, old: jnp.where(full, fresh, old), _copies(hidden, 2 * pairs), copies
            ),
            losses=jnp.where(full, 0.0, losses),
            rows=rows,
            count=jnp.where(full, 0, state.count + 1).astype(jnp.int32),
            es=new_es,
        )
        return new_state, loss, (flat.unravel(g_flat), g_head)

    def reset(cell, state: ESLearnerState, done):
        fresh = jax.tree.map(
            lambda a, h0: jnp.broadcast_to(h0, a.shape), state.hidden, cell.init_state()
        )
        copies = jax.tree.map(
            lambda a, h0: jnp.broadcast_to(h0, a.shape), state.copies, cell.init_state()
        )
        return state._replace(
            hidden=reset_where(done, state.hidden, fresh),
            copies=jax.tree.map(
                lambda old, new: jnp.where(done.reshape(1, -1, *(1,) * (old.ndim - 2)), new, old),
                state.copies,
                copies,
            ),
        )

    def sequence(cell, head, loss_fn, xs, ys, *, key=None):
        """A whole sequence as one window (longer than ``window``: windows, the last flushed)."""
        batch = xs.shape[1] if xs.ndim == 3 else None
        state = init(cell, key=key, batch_size=batch)

        def body(carry, xy):
            state, total = carry
            state, loss, grads = step(cell, head, loss_fn, state, *xy)
            return (state, jax.tree.map(jnp.add, total, (loss, grads))), None

        flat = flatten_cell(cell)
        zero = (jnp.zeros((), flat.theta.dtype), zeros_grads(cell, head))
        (state, (loss, (g_cell, g_head))), _ = jax.lax.scan(body, (state, zero), (xs, ys))
        open_window = state.count > 0
        g_last, _ = _estimate(est, state.losses, state.rows, state.es, sigma, pairs)
        g_cell = jax.tree.map(jnp.add, g_cell, flat.unravel(jnp.where(open_window, g_last, 0.0)))
        return loss, (g_cell, g_head)

    return Learner(
        init=init,
        step=step,
        sequence=sequence,
        name=name,
        truncation=window,
        per_step_grads=False,
        stochastic=True,
        reset=reset,
    )


def _copies(hidden: State, count: int) -> State:
    """``count`` copies of the state along a new leading axis."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (count, *a.shape)), hidden)


def _estimate(
    est: Estimator, losses: Array, rows: Array, state: ESState, sigma: float, pairs: int
) -> tuple[Array, ESState]:
    """The estimator's flat gradient from the copies' window losses."""
    slopes = (losses[:pairs] - losses[pairs:]) / (2 * sigma)
    g, state, _ = est.combine(slopes, rows, state)
    return g, state
