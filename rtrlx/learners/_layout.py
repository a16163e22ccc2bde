"""How a batch's streams go through a learner's step: all together, or one after another.

A learner's ``step`` maps over the streams of a batch with ``vmap``: every operation of the
step runs once on the whole batch. On a CPU that is the fast order while the learner state
is small, and the slow one when it is large: each of the step's passes then streams every
stream's traces through memory, where one stream's traces would stay in cache between
passes. :func:`streams_step` runs the same step one stream at a time inside the step, the
state updated in place, with the same numbers up to float rounding. Unlike
``sequence_grads(by_stream=True)``, which runs each stream over the whole sequence, it keeps
the streams in step, so the parameters can change after every step: it is the order an
online training loop can use.

:func:`choose_layout` picks the order for a run: it measures both when the choice is open
(an ``independent_streams`` learner, a batch, a CPU, and a state large enough for the order
to matter) and says why it chose what it chose.
"""

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from .._tree import keys_to_data
from ._base import Learner, LossFn, zeros_grads

#: The orders a batched step can take.
LAYOUTS = ("batched", "streams")

#: One stream's learner state, in bytes, below which ``choose_layout("auto")`` keeps the
#: batched step without measuring. Measured on a 2-core EPYC, batch 16: below it the
#: stream-at-a-time step was 1.4-3x slower in every configuration (KF-RTRL and SnAp-2 on
#: small GRUs, snap(1) on GRU n=128, diag_rtrl on LRU n=256, exact RTRL on Elman n=8).
MEASURE_BYTES = 256 * 1024


class Layout(NamedTuple):
    """The order chosen for a batched step, and why.

    Attributes:
        name: ``"batched"`` or ``"streams"``.
        reason: how it was chosen, in words (for ``result.json`` and the console).
        ms_per_step: the measured milliseconds per step of each candidate (empty when
            nothing was measured: None).
    """

    name: str
    reason: str
    ms_per_step: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The choice as a JSON-ready dict."""
        return {"name": self.name, "reason": self.reason, "ms_per_step": self.ms_per_step or {}}


def streams_step(learner: Learner) -> Callable[..., tuple[Any, jax.Array, Any]]:
    """``learner.step`` on a batched state, run one stream at a time within the step.

    The returned function takes and returns what ``learner.step`` does for a batch (state
    with a leading batch axis, ``x`` ``(batch, input)``, the batch-mean loss and gradients),
    and gives the same numbers up to float rounding. Each stream's slice of the state is
    advanced by the unbatched ``step`` in a ``fori_loop`` and written back in place.

    Args:
        learner: a learner with ``independent_streams`` (its streams share nothing).

    Returns:
        ``step(cell, head, loss_fn, state, x, y) -> (state, loss, (cell_grads, head_grads))``.

    Raises:
        ValueError: for a learner whose streams share state.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> from rtrlx.learners import streams_step
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> learner = rtrlx.rtrl()
        >>> state = learner.init(cell, batch_size=3)
        >>> state, loss, grads = streams_step(learner)(
        ...     cell, head, rtrlx.losses.mse, state, jnp.ones((3, 2)), jnp.zeros((3, 1)))
        >>> state.hidden.shape
        (3, 4)
    """
    if not learner.independent_streams:
        raise ValueError(
            f"{learner.name!r} shares state across the streams of a batch (a PRNG key or a "
            "feedback matrix), so they cannot run one after another; use the batched layout."
        )

    def step(cell, head, loss_fn: LossFn, state, x, y):
        batch = x.shape[0]

        def one(b, carry):
            state, loss, grads = carry
            mine = jax.tree.map(lambda a: a[b], state)
            mine, loss_b, grads_b = learner.step(cell, head, loss_fn, mine, x[b], y[b])
            state = jax.tree.map(lambda a, v: a.at[b].set(v), state, mine)
            return state, loss + loss_b, jax.tree.map(jnp.add, grads, grads_b)

        dtype = jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype
        start = (state, jnp.zeros((), dtype), zeros_grads(cell, head))
        state, loss, grads = lax.fori_loop(0, batch, one, start)
        return state, loss / batch, jax.tree.map(lambda g: g / batch, grads)

    return step


def layout_step(learner: Learner, layout: str) -> Callable[..., tuple[Any, jax.Array, Any]]:
    """The batched step in the order ``layout`` (``"batched"``: ``learner.step`` itself)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}.")
    return learner.step if layout == "batched" else streams_step(learner)


def stream_state_bytes(learner: Learner, cell: Any) -> int:
    """Bytes of one stream's learner state (hidden state and traces; keys count as data)."""
    one = jax.eval_shape(lambda: keys_to_data(learner.init(cell, key=jax.random.key(0))))
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(one))


def check_layout(layout: str, learner: Learner) -> None:
    """Refuse an unknown layout, and ``"streams"`` for a learner whose streams share state.

    Raises:
        ValueError: naming the valid layouts, or why the learner cannot run its streams in
            turn.
    """
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"unknown layout {layout!r}; valid: auto, {', '.join(LAYOUTS)}.")
    if layout == "streams":
        streams_step(learner)  # refuses a learner whose streams share state


def choose_layout(
    learner: Learner,
    cell: Any,
    head: Any,
    loss_fn: LossFn,
    x: jax.Array,
    y: jax.Array,
    layout: str = "auto",
    *,
    repeats: int = 5,
) -> Layout:
    """The order of the batched step for a run on batches like ``(x, y)``.

    ``"batched"`` and ``"streams"`` are taken as asked (``"streams"`` needs a learner with
    ``independent_streams``). ``"auto"`` keeps the batched step when the streams share
    state, the batch has one stream, the backend is not the CPU (an accelerator fills up
    with the batch) or one stream's state is under :data:`MEASURE_BYTES`; otherwise it
    times both orders on this machine, ``repeats`` calls of :data:`STEPS` steps each,
    interleaved, after compiling and a warm-up call, and takes the one with the faster best
    call.

    Args:
        learner: the learner.
        cell: the cell (or model) it trains.
        head: the readout.
        loss_fn: the per-step loss.
        x: one step's inputs for the batch, ``(batch, input)``.
        y: one step's targets for the batch.
        layout: ``"auto"``, ``"batched"`` or ``"streams"``.
        repeats: timed calls of :data:`STEPS` steps per candidate when measuring.

    Returns:
        The :class:`Layout`.

    Raises:
        ValueError: for an unknown layout, or ``"streams"`` with a learner whose streams
            share state.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> from rtrlx.learners import choose_layout
        >>> cell = rtrlx.cells.GRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(4, 1, key=jax.random.key(1))
        >>> choose_layout(rtrlx.rtrl(), cell, head, rtrlx.losses.mse,
        ...               jnp.ones((3, 2)), jnp.zeros((3, 1))).name
        'batched'
    """
    check_layout(layout, learner)
    if layout != "auto":
        return Layout(layout, "asked for")
    if not learner.independent_streams:
        return Layout("batched", "the learner's streams share state")
    if x.shape[0] == 1:
        return Layout("batched", "one stream")
    if jax.default_backend() != "cpu":
        return Layout("batched", f"on {jax.default_backend()} the batch fills the device")
    size = stream_state_bytes(learner, cell)
    if size < MEASURE_BYTES:
        under = f"one stream's state ({size // 1024} KiB) is under {MEASURE_BYTES // 1024} KiB"
        return Layout("batched", under)
    runs = {name: _timed_steps(learner, name, cell, head, loss_fn, x, y) for name in LAYOUTS}
    best_seconds = {name: float("inf") for name in LAYOUTS}
    for _ in range(repeats):  # interleaved, so that a disturbance hits both orders alike
        for name, run in runs.items():
            best_seconds[name] = min(best_seconds[name], run())
    times = {name: 1e3 * t / STEPS for name, t in best_seconds.items()}
    best = min(times, key=times.__getitem__)
    return Layout(best, "measured faster on this machine", times)


#: Steps per timed call when measuring an order.
STEPS = 4


def _timed_steps(
    learner: Learner, layout: str, cell: Any, head: Any, loss_fn: LossFn, x: Any, y: Any
) -> Callable[[], float]:
    """A function timing :data:`STEPS` batched steps in ``layout`` (seconds), warmed up.

    The steps run as a ``lax.scan`` with the state donated, as in a training loop: a lone
    jitted step would copy the whole state in and out at every call and time the copies,
    not the step (3x the in-loop time for exact RTRL on a GRU with n = 64).
    """
    step = layout_step(learner, layout)

    @functools.partial(jax.jit, donate_argnums=0)
    def advance(carry):
        def body(carry, _):
            state, total = carry
            state, loss, grads = step(cell, head, loss_fn, state, x, y)
            return (state, jax.tree.map(jnp.add, total, (loss, grads))), None

        return lax.scan(body, carry, None, length=STEPS)[0]

    state = learner.init(cell, key=jax.random.key(0), batch_size=x.shape[0])
    zero = jnp.zeros((), jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype)
    # The summed loss and gradients are outputs, so that no part of the step is dead code.
    carry = [advance((state, (zero, zeros_grads(cell, head))))]
    carry[0] = jax.block_until_ready(advance(carry[0]))  # the first calls allocate

    def run() -> float:
        tic = time.perf_counter()
        carry[0] = jax.block_until_ready(advance(carry[0]))
        return time.perf_counter() - tic

    return run
