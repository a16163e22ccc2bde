"""Truncated backpropagation through time, streaming in windows of k steps."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from .._tree import reset_where
from .._types import State
from ..cells._base import num_components, state_to_units
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
from .bptt import _grads


class TBPTTState(NamedTuple):
    """State of ``tbptt(k)``: the open window of at most ``k`` steps."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    window_start: State  # h at the start of the open window, same shapes as hidden
    inputs: Float[Array, "... k input"]  # the open window's inputs
    # d(loss)/dh_t of the open window's steps, unit view; batched, of the batch-mean loss
    cotangents: Float[Array, "... k S hidden"]
    count: Int[Array, ""]  # steps taken in the open window, shape=(), int32
    restarts: Bool[Array, "... k"]  # the open window's steps before which the stream restarted


def tbptt(k: int) -> Learner:
    """Truncated BPTT: backpropagate through windows of ``k`` steps, cut between windows.

    Streaming, the learner keeps the open window's inputs and the loss gradients with
    respect to its states (memory O(k), constant in the sequence length) and emits the
    window's gradient at its last step; the other steps emit the readout's gradient only.
    :func:`rtrlx.sequence_grads` also flushes a final partial window. With ``k >= T`` it is
    BPTT.

    Args:
        k: the truncation length, a positive integer.

    Returns:
        A :class:`Learner`.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> xs, ys = jnp.ones((6, 2)), jnp.zeros((6, 1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.tbptt(3), cell, head, rtrlx.losses.mse, xs, ys)

    References:
        Williams and Peng. An efficient gradient-based algorithm for on-line training of
        recurrent network trajectories. Neural Computation 1990.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"tbptt(k): the truncation length k must be a positive integer, got {k!r}. "
            "Use k >= 1 (k = 1 backpropagates through the current step only)."
        )

    def init(cell, *, key=None, batch_size=None):
        del key
        check_cell(cell, f"tbptt({k})")
        s, n = num_components(cell), cell.hidden_size

        def make():
            h0 = cell.init_state()
            dtype = jax.tree.leaves(h0)[0].real.dtype
            return TBPTTState(
                hidden=h0,
                window_start=h0,
                inputs=jnp.zeros((k, cell.input_size), dtype),
                cotangents=jnp.zeros((k, s, n), dtype),
                count=jnp.zeros((), jnp.int32),
                restarts=jnp.zeros((k,), bool),
            )

        state = batch_init(cell, batch_size, make)
        return state._replace(count=jnp.zeros((), jnp.int32))

    def step(cell, head, loss_fn, state: TBPTTState, x, y):
        name = f"tbptt({k})"
        check_cell(cell, name)
        batched = is_batched(cell, state.hidden, x, name, head=head, y=y)
        flat = flatten_cell(cell)
        count = state.count

        def advance(hidden, inputs, x):
            return cell(hidden, x), inputs.at[count].set(x)

        new_hidden, inputs = map_batch(advance, batched, state.hidden, state.inputs, x)
        # The batch-mean loss and its gradients at once: the cell's and head's gradients
        # come out of products over the batch, never one parameter vector per stream.
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, new_hidden, y, batched)
        # delta carries the batch mean's 1/B, so the window's vjp sums the streams.
        cotangents = lax.dynamic_update_index_in_dim(state.cotangents, delta, count, axis=-3)
        fresh = state_to_units(cell.init_state())

        def unroll(theta, start, inputs, restarts):
            f = unit_transition(flat, start)

            def body(u, x_restart):
                x, restart = x_restart
                u = f(theta, jnp.where(restart, fresh, u), x)
                return u, u

            return lax.scan(body, state_to_units(start), (inputs, restarts))[1]

        def window_grad():
            def all_streams(theta):  # theta shared: its cotangent is summed over streams
                if not batched:
                    return unroll(theta, state.window_start, inputs, state.restarts)
                per = jax.vmap(unroll, in_axes=(None, 0, 0, 0))
                return per(theta, state.window_start, inputs, state.restarts)

            # Steps after `count` carry zero cotangents, so a partial window is exact too.
            return jax.vjp(all_streams, flat.theta)[1](cotangents)[0]

        full = count == k - 1
        g_window = lax.cond(full, window_grad, lambda: jnp.zeros_like(flat.theta))
        g_cell = ravel_pytree(g_direct)[0] + g_window
        new_state = TBPTTState(
            hidden=new_hidden,
            window_start=jax.tree.map(
                lambda a, b: jnp.where(full, a, b), new_hidden, state.window_start
            ),
            inputs=inputs,
            cotangents=jnp.where(full, jnp.zeros_like(cotangents), cotangents),
            count=jnp.where(full, 0, count + 1).astype(jnp.int32),
            restarts=state.restarts & ~full,
        )
        return new_state, loss, (flat.unravel(g_cell), g_head)

    def reset(cell, state: TBPTTState, done):
        # The stream's hidden state restarts now; the open window's replay restarts it at
        # the same step, so the gradient does not flow across the boundary.
        fresh = jax.tree.map(
            lambda a, h0: jnp.broadcast_to(h0, a.shape), state.hidden, cell.init_state()
        )
        at = jnp.arange(k, dtype=jnp.int32) == state.count
        return state._replace(
            hidden=reset_where(done, state.hidden, fresh),
            restarts=state.restarts | (done[:, None] & at[None, :]),
        )

    return Learner(
        init=init,
        step=step,
        sequence=_grads(k),
        name=f"tbptt:{k}",
        truncation=k,
        per_step_grads=False,
        reset=reset,
    )
