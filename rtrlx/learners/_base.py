"""What every learner shares: the ``Learner`` value, the readout, batching and input checks.

A learner is written for one example. ``step`` handles a batch by ``vmap`` over the leading
axis of the state and input, keeping counters and PRNG keys unbatched, and averages losses
and gradients over the batch.
"""

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._errors import ShapeError, UnsupportedCellError
from .._tree import reset_where
from .._types import Grads, State
from ..cells._base import AbstractCell, state_to_units, units_to_state

LossFn = Callable[[Array, Array], Array]


def _never_exact(cell: AbstractCell) -> bool:
    return False


class Learner(NamedTuple):
    """A gradient algorithm: a pair of pure functions, built by a factory such as ``rtrl()``.

    Attributes:
        init: ``init(cell, *, key=None, batch_size=None) -> state``: the hidden state
            ``h_0`` and the learner's traces, for one stream or a batch of ``batch_size``.
        step: ``step(cell, head, loss_fn, state, x, y) -> (state, loss, (cell_grads,
            head_grads))``: consume one time step; ``loss`` is this step's loss (batch
            mean) and the gradients are this step's contribution, so that their sum over
            a sequence is the learner's gradient of the summed loss.
        sequence: an optional whole-sequence path ``(cell, head, loss_fn, xs, ys, *, key)
            -> (loss, grads)`` that :func:`rtrlx.sequence_grads` uses instead of scanning
            ``step`` (BPTT's reverse pass, for one). It returns None for a cell it has no
            such path for, and ``step`` is scanned.
        name: the learner as the command line names it, e.g. ``"snap:1"``.
        exact_on: ``exact_on(cell) -> bool``: whether this learner claims the exact
            gradient on ``cell``. ``rtrlx check`` holds it to that claim.
        online: whether ``step`` can stream (memory constant in the sequence length).
        independent_streams: whether the streams of a batch share nothing: ``step`` maps
            over them, and ``init(cell, key=k, batch_size=B)`` is the stack of
            ``init(cell, key=jax.random.split(k, B)[b])``. Then
            :func:`rtrlx.sequence_grads` may run the streams one after another
            (``by_stream``).
        truncation: for a learner that cuts the gradient's path into windows (``tbptt(k)``),
            the window length ``k``: a caller whose data resets every ``P`` steps needs
            ``P % k == 0``, and the learner is exact on sequences of at most ``k`` steps.
            None when the learner does not truncate.
        per_step_grads: whether ``step`` emits each step's own gradient contribution at
            that step (RTRL and its approximations). False when gradients arrive late, as a
            window's sum at its end (``tbptt``), or never (``bptt``): an agent that weighs
            each step's gradient by a later signal (an eligibility trace, AC(λ)) needs True.
        stochastic: whether the learner draws noise. Its state then has a field ``key``
            holding one PRNG key per stream (leading batch axis when batched), split at
            every step; ``init`` without a key warns and uses ``jax.random.key(0)``.
        reset: ``reset(cell, state, done) -> state``: restart the streams of a batched
            state where ``done`` (shape ``(batch,)``) before their next step, as if each
            began a new sequence there. None: :func:`restart_streams` resets the whole
            per-stream state of a learner with ``independent_streams`` and refuses others.
    """

    init: Callable[..., Any]
    step: Callable[..., tuple[Any, Array, tuple[Grads, Grads]]]
    sequence: Callable[..., tuple[Array, tuple[Grads, Grads]] | None] | None = None
    name: str = ""
    exact_on: Callable[[AbstractCell], bool] = _never_exact
    online: bool = True
    independent_streams: bool = False
    truncation: int | None = None
    per_step_grads: bool = True
    stochastic: bool = False
    reset: Callable[..., Any] | None = None

    def exact_for(self, cell: AbstractCell, steps: int) -> bool:
        """Whether this learner claims the exact gradient on ``cell`` over ``steps`` steps.

        A truncating learner is exact when its window holds the whole sequence, unless it
        draws noise (ES estimates even a window it holds whole).
        """
        if self.truncation is not None and steps <= self.truncation and not self.stochastic:
            return True
        return bool(self.exact_on(cell))


def restart_streams(learner: Learner, cell: AbstractCell, state: Any, done: Array) -> Any:
    """Restart the streams of a batched learner state where ``done``, keeping the others.

    A restarted stream's hidden state and traces are as ``init`` makes them, so its next
    step begins a new sequence (an episode boundary of a task, the OK paper's reset every
    100 characters). PRNG keys keep running. A learner whose streams share nothing
    (``independent_streams``) is reset stream by stream; one with its own ``reset`` (e.g.
    ``tbptt``, which must also cut its open window there) uses that.

    Args:
        learner: the learner that made ``state``.
        cell: the cell it trains.
        state: its state for a batch of ``B`` streams.
        done: booleans ``(B,)``, True where a stream restarts.

    Returns:
        The state with the ``done`` streams restarted.

    Raises:
        UnsupportedCellError: for a learner that cannot restart one stream of a batch.

    Examples:
        >>> import jax, jax.numpy as jnp, rtrlx
        >>> cell = rtrlx.cells.GRU(2, 3, key=jax.random.key(0))
        >>> learner = rtrlx.rtrl()
        >>> state = learner.init(cell, batch_size=2)
        >>> state = state._replace(hidden=jnp.ones((2, 3)))
        >>> restart_streams(learner, cell, state, jnp.array([True, False])).hidden[:, 0].tolist()
        [0.0, 1.0]
    """
    if learner.reset is not None:
        return learner.reset(cell, state, done)
    if not learner.independent_streams:
        raise UnsupportedCellError(
            f"{learner.name} cannot restart one stream of a batch at a time (its streams "
            "share state); use a learner whose streams are independent (rtrl, snap, "
            "diag_rtrl, kf_rtrl, ok, uoro) or tbptt:k, or a task without per-stream resets."
        )
    fresh = learner.init(cell, key=jax.random.key(0), batch_size=done.shape[0])
    return reset_where(done, state, fresh)


class FlatCell(NamedTuple):
    """A cell split into its flat parameter vector and a way back."""

    theta: Float[Array, " P"]
    unravel: Callable[[Array], Any]
    static: Any

    def rebuild(self, theta: Array) -> AbstractCell:
        """The cell with parameters ``theta``."""
        return eqx.combine(self.unravel(theta), self.static)


def flatten_cell(cell: AbstractCell) -> FlatCell:
    """Split ``cell`` into a flat parameter vector (in ``jax.tree.leaves`` order)."""
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    theta, unravel = ravel_pytree(params)
    return FlatCell(theta, unravel, static)


def unit_transition(flat: FlatCell, like: State) -> Callable[[Array, Array, Array], Array]:
    """``f(theta, units, x) -> units'``: one step of the cell in the unit view."""

    def f(theta, units, x):
        return state_to_units(flat.rebuild(theta)(units_to_state(units, like), x))

    return f


def readout(
    cell: AbstractCell, head: Any, loss_fn: LossFn, hidden: State, y: Array
) -> tuple[Array, Array, Any, Array]:
    """Loss of one example at one step and its gradients.

    Returns:
        ``(loss, d loss/d theta through the features only (flat), head gradients,
        d loss/d state in the unit view (S, n))``.
    """
    cell_p, cell_s = eqx.partition(cell, eqx.is_inexact_array)
    head_p, head_s = eqx.partition(head, eqx.is_inexact_array)
    units = state_to_units(hidden)

    def loss_of(cp, hp, u):
        c = eqx.combine(cp, cell_s)
        return loss_fn(eqx.combine(hp, head_s)(c.features(units_to_state(u, hidden))), y)

    loss, (g_cell, g_head, delta) = jax.value_and_grad(loss_of, argnums=(0, 1, 2))(
        cell_p, head_p, units
    )
    return loss, ravel_pytree(g_cell)[0], g_head, delta


def readout_batch(
    cell: AbstractCell, head: Any, loss_fn: LossFn, hidden: State, y: Array, batched: bool
) -> tuple[Array, Grads, Grads, Array]:
    """Batch-mean loss of one step and its gradients, computed on the whole batch at once.

    Unlike :func:`readout` (one example), the head's gradient comes out of one matmul over
    the batch instead of a per-example outer product averaged afterwards.

    Returns:
        ``(loss, d loss/d cell params through the features only (pytree), head gradients,
        d loss/d state in the unit view)``; the last is ``(S, n)``, or ``(batch, S, n)``
        including the batch mean's ``1/batch`` factor.
    """
    cell_p, cell_s = eqx.partition(cell, eqx.is_inexact_array)
    head_p, head_s = eqx.partition(head, eqx.is_inexact_array)
    like = jax.tree.map(lambda a: a[0], hidden) if batched else hidden
    units = jax.vmap(state_to_units)(hidden) if batched else state_to_units(hidden)

    def loss_of(cp, hp, u):
        c, h = eqx.combine(cp, cell_s), eqx.combine(hp, head_s)

        def one(u, y):
            return loss_fn(h(c.features(units_to_state(u, like))), y)

        return jnp.mean(jax.vmap(one)(u, y)) if batched else one(u, y)

    loss, grads = jax.value_and_grad(loss_of, argnums=(0, 1, 2))(cell_p, head_p, units)
    return loss, *grads


def check_cell(cell: Any, learner: str) -> AbstractCell:
    """Refuse anything that is not an rtrlx cell, with the fix in the message."""
    if not isinstance(cell, AbstractCell):
        raise UnsupportedCellError(
            f"{learner}: expected an rtrlx cell (a subclass of rtrlx.cells.AbstractCell), got "
            f"{type(cell).__name__}. Use one of rtrlx.cells (Elman, GRU, LSTM, RHN, LRU, RTU, "
            "ELSTM) or subclass AbstractCell."
        )
    return cell


def check_head(cell: AbstractCell, head: Any, learner: str = "") -> None:
    """Refuse a head that does not read the cell's ``output_size`` features."""
    in_features = getattr(head, "in_features", None)
    if isinstance(in_features, int) and in_features != cell.output_size:
        raise ShapeError(
            f"{learner + ': ' if learner else ''}the head reads {in_features} features but the "
            f"cell gives cell.output_size = {cell.output_size}; build the head with "
            "in_features=cell.output_size."
        )


def check_targets(head: Any, lead: tuple[int, ...], y: Array, what: str, learner: str) -> None:
    """Refuse targets whose shape does not follow the inputs' leading axes and the head.

    Integer targets (class labels) are ``lead``. Real targets (regression, soft labels, or a
    task's own columns, such as a scored flag beside the value) carry an output axis after
    ``lead`` unless the head is scalar: without it, the target would broadcast silently
    against the head's ``(out,)`` prediction in the loss.
    """
    y = jnp.asarray(y)
    prefix = f"{learner}: " if learner else ""
    if y.shape[: len(lead)] != lead:
        raise ShapeError(
            f"{prefix}{what} has shape {y.shape} but must start with the inputs' leading axes "
            f"{lead}, one target per step and stream."
        )
    out = getattr(head, "out_features", None)
    if jnp.issubdtype(y.dtype, jnp.integer) or jnp.issubdtype(y.dtype, jnp.bool_):
        if y.shape != lead:
            raise ShapeError(
                f"{prefix}{what} has shape {y.shape}; integer targets are class labels, "
                f"{lead}, one per step and stream."
            )
    elif isinstance(out, int) and y.ndim == len(lead):
        raise ShapeError(
            f"{prefix}{what} has shape {y.shape}; expected {(*lead, out)}: real targets carry "
            f"the output axis of the head's {out} outputs. A target without it would "
            "broadcast silently in the loss."
        )


def _check_finite(a: Array, what: str, learner: str) -> None:
    """Refuse NaN or inf in concrete inputs (under ``jit`` the run's loss check catches them)."""
    if isinstance(a, Tracer):
        return
    values = np.asarray(a)
    if np.issubdtype(values.dtype, np.inexact) and not np.all(np.isfinite(values)):
        where = np.argwhere(~np.isfinite(values))[0].tolist()
        raise ValueError(
            f"{learner}: {what} holds NaN or inf at {where}; "
            "clean the data (a NaN input makes every later state and gradient NaN)."
        )


def is_batched(
    cell: AbstractCell,
    hidden: State,
    x: Array,
    learner: str,
    *,
    head: Any = None,
    y: Array | None = None,
) -> bool:
    """Whether this step is batched, after checking ``x``, ``head`` and ``y`` against the cell.

    Raises:
        ShapeError: for an input, head or target that does not fit.
        ValueError: for a concrete input or target holding NaN or inf.
    """
    x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != cell.input_size:
        raise ShapeError(
            f"{learner}: x_t has shape {x.shape}; expected (input,) or (batch, input) with "
            f"input = cell.input_size = {cell.input_size}."
        )
    state_ndim = jax.tree.leaves(hidden)[0].ndim
    batched = state_ndim == 2
    if batched != (x.ndim == 2) or (batched and jax.tree.leaves(hidden)[0].shape[0] != x.shape[0]):
        raise ShapeError(
            f"{learner}: x_t has shape {x.shape} but the state was made for "
            + (f"a batch of {jax.tree.leaves(hidden)[0].shape[0]}" if batched else "one stream")
            + ". Call learner.init(cell, key=key, batch_size=B) with B = x_t.shape[0], or "
            "batch_size=None for unbatched steps."
        )
    if head is not None:
        check_head(cell, head, learner)
    _check_finite(x, "x_t", learner)
    if y is not None:
        check_targets(head, x.shape[:-1], y, "y_t", learner)
        _check_finite(y, "y_t", learner)
    return batched


def batch_init(cell: AbstractCell, batch_size: int | None, make: Callable[[], Any]) -> Any:
    """``make()`` for one stream, broadcast to ``batch_size`` streams when given."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")
    one = make()
    if batch_size is None:
        return one
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (batch_size, *a.shape)), one)


def map_batch(fn: Callable[..., Any], batched: bool, *args: Any) -> Any:
    """Apply a one-example ``fn`` to each example when batched."""
    return jax.vmap(fn)(*args) if batched else fn(*args)


def batch_mean(tree: Any, batched: bool) -> Any:
    """Average over the batch axis when batched."""
    return jax.tree.map(lambda a: jnp.mean(a, axis=0), tree) if batched else tree


def zeros_grads(cell: AbstractCell, head: Any) -> tuple[Grads, Grads]:
    """Zero gradients shaped like ``(eqx.filter(cell, ...), eqx.filter(head, ...))``."""
    return jax.tree.map(
        jnp.zeros_like,
        (eqx.filter(cell, eqx.is_inexact_array), eqx.filter(head, eqx.is_inexact_array)),
    )


def flat_param_units(cell: AbstractCell) -> np.ndarray:
    """The unit of every entry of the flat parameter vector (see ``param_units``)."""
    leaves = jax.tree.leaves(cell.param_units())
    return np.concatenate([np.asarray(u).reshape(-1) for u in leaves]).astype(np.int32)


def stream_keys_init(key: Any, batch_size: int | None, learner: str) -> Any:
    """The ``key`` field of a stochastic learner's state: one key per stream.

    Every stochastic learner keeps the same layout: a single key for one stream, ``(batch,)``
    keys for a batch, the stack of ``jax.random.split(key, batch_size)``, so that a stream's
    draws do not depend on the other streams of its batch (and running the streams one after
    another gives the same numbers). A missing key warns, as optax's ``add_noise`` does.
    """
    if key is None:
        warnings.warn(
            f"{learner}: init() got no key; using jax.random.key(0), so every run draws the "
            "same noise. Pass key=jax.random.key(seed).",
            stacklevel=3,
        )
        key = jax.random.key(0)
    return key if batch_size is None else jax.random.split(key, batch_size)


def split_stream_keys(keys: Any, batched: bool) -> tuple[Any, Any]:
    """Split each stream's key: ``(keys kept in the state, keys used at this step)``."""

    def split(key):
        key, sub = jax.random.split(key)
        return key, sub

    return map_batch(split, batched, keys)
