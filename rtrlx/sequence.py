"""Gradients over a whole sequence, for any learner."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import NON_FINITE_LOSS, ShapeError
from ._types import Grads
from .cells._base import AbstractCell
from .learners._base import Learner, LossFn, check_cell, zeros_grads


def check_sequence(cell: AbstractCell, head: Any, xs: Array, ys: Array) -> None:
    """Raise :class:`ShapeError` unless ``xs``, ``ys``, the cell and the head fit together."""
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    if xs.ndim not in (2, 3) or xs.shape[-1] != cell.input_size:
        raise ShapeError(
            f"xs has shape {xs.shape}; expected (T, input) or (T, batch, input) with input = "
            f"cell.input_size = {cell.input_size}."
        )
    lead = xs.shape[:-1]
    if ys.shape[: len(lead)] != lead:
        raise ShapeError(
            f"ys has shape {ys.shape} but xs has shape {xs.shape}: ys must start with xs's "
            f"leading axes {lead} (time{', batch' if len(lead) == 2 else ''}), one target per "
            "step."
        )
    in_features = getattr(head, "in_features", None)
    if isinstance(in_features, int) and in_features != cell.output_size:
        raise ShapeError(
            f"the head reads {in_features} features but the cell gives cell.output_size = "
            f"{cell.output_size}; build the head with in_features=cell.output_size."
        )


def sequence_grads(
    learner: Learner,
    cell: AbstractCell,
    head: Any,
    loss_fn: LossFn,
    xs: Float[Array, "T *batch input"],
    ys: Array,
    *,
    key: PRNGKeyArray | None = None,
) -> tuple[Float[Array, ""], tuple[Grads, Grads]]:
    """The learner's gradient of ``sum_t mean_batch loss_fn(head(cell.features(h_t)), y_t)``.

    The state starts at ``h_0 = cell.init_state()`` and the parameters are held fixed over
    the sequence, so exact learners return BPTT's gradient and stochastic learners an
    unbiased estimate of it. Online learners run their streaming ``step`` under
    ``lax.scan``; a learner with a whole-sequence path (``bptt``, ``tbptt``) uses it.

    Args:
        learner: a :class:`Learner`, e.g. ``rtrlx.rtrl()``.
        cell: an rtrlx cell.
        head: the readout, a callable Module from ``cell.output_size`` features.
        loss_fn: per-step loss of one example, e.g. ``rtrlx.losses.mse``.
        xs: inputs, ``(T, input)`` or ``(T, batch, input)``.
        ys: targets, leading axes ``(T,)`` or ``(T, batch)``.
        key: PRNG key for stochastic learners (default ``jax.random.key(0)``).

    Returns:
        ``(loss, (cell_grads, head_grads))``, the gradients shaped like
        ``eqx.filter(module, eqx.is_inexact_array)``.

    Raises:
        ShapeError: when ``xs``, ``ys``, cell and head do not fit together.
        EquinoxRuntimeError: when the loss is not finite (also under ``jit``).

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> key = jax.random.key(0)
        >>> cell = rtrlx.cells.GRU(input_size=4, hidden_size=8, key=key)
        >>> head = eqx.nn.Linear(cell.output_size, 3, key=key)
        >>> xs, ys = jnp.ones((10, 4)), jnp.zeros((10, 3))
        >>> loss, (g_cell, g_head) = rtrlx.sequence_grads(
        ...     rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys, key=key)
        >>> g_cell.w_h.shape
        (24, 8)
    """
    check_cell(cell, learner.name or "learner")
    check_sequence(cell, head, xs, ys)
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    key = jax.random.key(0) if key is None else key
    if learner.sequence is not None:
        loss, grads = learner.sequence(cell, head, loss_fn, xs, ys, key=key)
    else:
        batch = xs.shape[1] if xs.ndim == 3 else None
        state = learner.init(cell, key=key, batch_size=batch)

        def body(carry, xy):
            state, total_loss, total = carry
            state, loss, grads = learner.step(cell, head, loss_fn, state, *xy)
            return (state, total_loss + loss, jax.tree.map(jnp.add, total, grads)), None

        zero = jnp.zeros((), jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype)
        (_, loss, grads), _ = lax.scan(body, (state, zero, zeros_grads(cell, head)), (xs, ys))
    loss = eqx.error_if(loss, ~jnp.isfinite(loss), NON_FINITE_LOSS)
    return loss, grads
