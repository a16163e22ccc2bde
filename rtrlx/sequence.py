"""Gradients over a whole sequence, for any learner."""

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import NON_FINITE_LOSS, ShapeError
from ._types import Grads
from .cells._base import AbstractCell
from .learners._base import (
    Learner,
    LossFn,
    check_cell,
    check_head,
    check_targets,
    zeros_grads,
)


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
    check_head(cell, head)
    check_targets(head, lead, ys, "ys", "")


#: One stream's learner state, in bytes, from which ``sequence_grads`` runs a batch's streams
#: one after another on CPU (``by_stream=None``). Measured on a 2-core EPYC, batch 16
#: (``benchmarks/by_stream.sh``): from 515 KiB per stream up, one after another was 1.1-3.4x
#: faster (exact RTRL on GRU, OK on RHN and LSTM, SnAp-2 on GRU); at 97 KiB and below the
#: batched steps were faster by up to 1.5x (KF-RTRL, diag_rtrl), and even at 102 KiB.
BY_STREAM_BYTES = 256 * 1024


def use_by_stream(learner: Learner, cell: AbstractCell, by_stream: bool | None = None) -> bool:
    """Whether ``sequence_grads`` runs a batch's streams one after another (see its docs).

    Raises:
        ValueError: for ``by_stream=True`` with a learner whose streams are not independent.
    """
    if by_stream is not None and not by_stream:
        return False
    if not learner.independent_streams:
        if by_stream:
            raise ValueError(
                f"by_stream=True: {learner.name!r} shares state across the streams of a batch "
                "(a PRNG key or a feedback matrix), so they cannot run one after another. "
                "Leave by_stream unset, or use rtrl, snap, diag_rtrl, kf_rtrl or ok."
            )
        return False
    if by_stream:
        return True
    if jax.default_backend() != "cpu":
        return False
    one = jax.eval_shape(lambda: learner.init(cell, key=jax.random.key(0)))
    size = sum(
        leaf.size * leaf.dtype.itemsize
        for leaf in jax.tree.leaves(one)
        if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
    )
    return size >= BY_STREAM_BYTES


def _scan_steps(
    learner: Learner, cell: AbstractCell, head: Any, loss_fn: LossFn, xs: Array, ys: Array, key
) -> tuple[Array, tuple[Grads, Grads]]:
    """Scan the learner's streaming ``step`` over the sequence, all streams together."""
    batch = xs.shape[1] if xs.ndim == 3 else None
    state = learner.init(cell, key=key, batch_size=batch)

    def body(carry, xy):
        state, total_loss, total = carry
        state, loss, grads = learner.step(cell, head, loss_fn, state, *xy)
        return (state, total_loss + loss, jax.tree.map(jnp.add, total, grads)), None

    zero = jnp.zeros((), jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype)
    (_, loss, grads), _ = lax.scan(body, (state, zero, zeros_grads(cell, head)), (xs, ys))
    return loss, grads


def _streams_in_turn(
    learner: Learner, cell: AbstractCell, head: Any, loss_fn: LossFn, xs: Array, ys: Array, key
) -> tuple[Array, tuple[Grads, Grads]]:
    """The batch's streams one after another, each a scan over time from its own state.

    Stream ``b`` starts from ``init(cell, key=split(key, B)[b])``, which is stream ``b`` of
    the batched ``init(cell, key=key, batch_size=B)`` (``independent_streams``), so the
    result is the batched scan's up to float rounding.
    """
    batch = xs.shape[1]
    keys = jax.random.split(key, batch)

    def one(carry, stream):
        total_loss, total = carry
        k, x, y = stream
        loss, grads = _scan_steps(learner, cell, head, loss_fn, x, y, k)
        return (total_loss + loss, jax.tree.map(jnp.add, total, grads)), None

    zero = jnp.zeros((), jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype)
    streams = (keys, jnp.swapaxes(xs, 0, 1), jnp.swapaxes(ys, 0, 1))
    (loss, grads), _ = lax.scan(one, (zero, zeros_grads(cell, head)), streams)
    return loss / batch, jax.tree.map(lambda g: g / batch, grads)


def sequence_grads(
    learner: Learner,
    cell: AbstractCell,
    head: Any,
    loss_fn: LossFn,
    xs: Float[Array, "T *batch input"],
    ys: Array,
    *,
    key: PRNGKeyArray | None = None,
    by_stream: bool | None = None,
) -> tuple[Float[Array, ""], tuple[Grads, Grads]]:
    """The learner's gradient of ``sum_t mean_batch loss_fn(head(cell.features(h_t)), y_t)``.

    The state starts at ``h_0 = cell.init_state()`` and the parameters are held fixed over
    the sequence, so exact learners return BPTT's gradient and stochastic learners an
    unbiased estimate of it. Online learners run their streaming ``step`` under
    ``lax.scan``; a learner with a whole-sequence path for the cell uses it (``bptt`` and
    ``tbptt``'s reverse passes, ``diag_rtrl``'s chunked LRU rule, ``online_deep``'s chunks),
    with the same numbers as streaming and memory that does not grow with the sequence
    (except BPTT's).

    Args:
        learner: a :class:`Learner`, e.g. ``rtrlx.rtrl()``.
        cell: an rtrlx cell.
        head: the readout, a callable Module from ``cell.output_size`` features.
        loss_fn: per-step loss of one example, e.g. ``rtrlx.losses.mse``.
        xs: inputs, ``(T, input)`` or ``(T, batch, input)``.
        ys: targets, leading axes ``(T,)`` or ``(T, batch)``.
        key: PRNG key for stochastic learners (default ``jax.random.key(0)``).
        by_stream: run a batch's streams one after another, each a scan over the whole
            sequence, instead of all streams together at every step. The numbers are the
            same (up to float rounding) for exact learners and for stochastic ones whose
            draws do not depend on the layout (UORO, KF-RTRL, OK at full rank: each stream
            has its own key); ``ok(r)`` below full rank decides between eigenvectors, and
            rounding that differs between layouts can flip a decision: a different, equally
            unbiased draw (9-12% of the gradient norm apart on RHN n = 128). Only the speed
            and the memory change otherwise: one stream's traces are live at a time. It
            needs a learner with ``independent_streams``.
            ``None`` (the default) chooses it on CPU when one stream's learner state is at
            least :data:`BY_STREAM_BYTES` (256 KiB), where it was measured faster (exact
            RTRL, OK, SnAp-2 on mid-sized cells); batched steps win below that.

    Returns:
        ``(loss, (cell_grads, head_grads))``, the gradients shaped like
        ``eqx.filter(module, eqx.is_inexact_array)``.

    Raises:
        ShapeError: when ``xs``, ``ys``, cell and head do not fit together.
        ValueError: for ``by_stream=True`` with a learner whose streams are not independent.
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
    if key is None:
        if learner.stochastic:
            warnings.warn(
                f"sequence_grads: {learner.name} draws noise but got no key; using "
                "jax.random.key(0), so every call draws the same noise. Pass key=.",
                stacklevel=2,
            )
        key = jax.random.key(0)
    batch = xs.shape[1] if xs.ndim == 3 else None
    whole = None
    if learner.sequence is not None:
        whole = learner.sequence(cell, head, loss_fn, xs, ys, key=key)
    if whole is not None:
        if by_stream:
            raise ValueError(
                f"by_stream=True: {learner.name!r} has its own whole-sequence path for "
                f"{type(cell).__name__}, which sequence_grads uses; leave by_stream unset."
            )
        loss, grads = whole
    elif batch is not None and use_by_stream(learner, cell, by_stream):
        loss, grads = _streams_in_turn(learner, cell, head, loss_fn, xs, ys, key)
    else:
        loss, grads = _scan_steps(learner, cell, head, loss_fn, xs, ys, key)
    loss = eqx.error_if(loss, ~jnp.isfinite(loss), NON_FINITE_LOSS)
    return loss, grads
