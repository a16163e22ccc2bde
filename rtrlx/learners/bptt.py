"""Backpropagation through time: the reference every other learner is measured against."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from .._errors import NotOnlineError
from ..cells._base import AbstractCell
from ._base import Learner, LossFn, batch_init, check_cell


def unrolled_loss(
    cell: AbstractCell,
    head: Any,
    loss_fn: LossFn,
    xs: jax.Array,
    ys: jax.Array,
    truncation: int | None = None,
) -> jax.Array:
    """``sum_t mean_batch loss_fn(head(features(h_t)), y_t)``, differentiable end to end.

    With ``truncation = k`` the state is cut from the graph at every ``t`` divisible by
    ``k``, so its gradient is truncated BPTT over windows of ``k`` steps.
    """
    batched = xs.ndim == 3
    h0 = batch_init(cell, xs.shape[1] if batched else None, cell.init_state)
    step = jax.vmap(cell) if batched else cell

    def one_loss(h, y):
        return loss_fn(head(cell.features(h)), y)

    def body(h, inputs):
        t, x, y = inputs
        if truncation is not None:
            cut = (t % truncation) == 0
            h = jax.tree.map(lambda a: jnp.where(cut, lax.stop_gradient(a), a), h)
        h = step(h, x)
        loss = jnp.mean(jax.vmap(one_loss)(h, y)) if batched else one_loss(h, y)
        return h, loss

    _, losses = lax.scan(body, h0, (jnp.arange(xs.shape[0]), xs, ys))
    return jnp.sum(losses)


def _grads(truncation: int | None):
    def sequence(cell, head, loss_fn, xs, ys, *, key=None):
        del key

        def total(modules):
            return unrolled_loss(modules[0], modules[1], loss_fn, xs, ys, truncation)

        return eqx.filter_value_and_grad(total)((cell, head))

    return sequence


def bptt() -> Learner:
    """Backpropagation through time over the whole sequence: the exact gradient.

    BPTT stores every state of the sequence, so it has no streaming ``step``: use it through
    :func:`rtrlx.sequence_grads`, or stream with ``tbptt(k)``.

    Returns:
        A :class:`Learner` whose ``sequence`` path is reverse-mode differentiation of the
        unrolled loss.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.Elman(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> xs, ys = jnp.ones((5, 2)), jnp.zeros((5, 1))
        >>> loss, (g_cell, g_head) = rtrlx.sequence_grads(
        ...     rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)
        >>> g_cell.weight.shape
        (4, 6)

    References:
        Werbos. Backpropagation through time: what it does and how to do it. Proc. IEEE
        1990. https://doi.org/10.1109/5.58337
    """

    def init(cell, *, key=None, batch_size=None):
        del key
        check_cell(cell, "bptt")
        return batch_init(cell, batch_size, cell.init_state)

    def step(cell, head, loss_fn, state, x, y):
        raise NotOnlineError(
            "bptt() needs the whole sequence and cannot stream one step at a time. Use "
            "rtrlx.sequence_grads(rtrlx.bptt(), ...), or an online learner such as "
            "rtrlx.rtrl() or rtrlx.tbptt(k) for streaming."
        )

    return Learner(
        init=init,
        step=step,
        sequence=_grads(None),
        name="bptt",
        exact_on=lambda cell: True,
        online=False,
        per_step_grads=False,
    )
