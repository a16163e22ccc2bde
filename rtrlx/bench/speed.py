"""Time per step of a learner, and of BPTT on the same cell and sequence, in one run."""

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..learners import RTRLState, make
from ..losses import mse
from ..sequence import sequence_grads, use_by_stream
from .flops import influence_flops, xla_flops


@dataclass(frozen=True)
class SpeedResult:
    """One measurement: seconds per time step (median over repetitions) and its spread."""

    learner: str
    cell: str
    hidden: int
    batch: int
    steps: int  # the sequence length the time was measured on
    seconds_per_step: float  # median
    spread: float  # (max - min) / median over the repetitions
    compile_seconds: float
    repeats: int
    # Floats in one stream's learner state (hidden state and traces): constant in T for a
    # streaming learner; for BPTT, the T hidden states it stores.
    state_floats: int
    # Floating-point operations of one streaming step on the whole batch, as XLA counts them
    # in the compiled step (None for BPTT and inference, which have no step).
    flops_per_step: float | None = None
    # Exact RTRL's influence update alone, counted by hand (``bench.influence_flops``).
    influence_flops_per_step: int | None = None
    # Whether sequence_grads ran the batch's streams one after another (``by_stream``).
    by_stream: bool = False
    # CPU time other processes used while the repetitions ran, in cores (0: a quiet
    # machine; see ``other_cpu``); None where /proc/stat cannot be read.
    other_load: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


def _floats(tree: Any) -> int:
    """Real numbers held by the inexact leaves of ``tree`` (a complex entry counts 2)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            total += math.prod(leaf.shape) * (
                2 if jnp.issubdtype(leaf.dtype, jnp.complexfloating) else 1
            )
    return total


def _machine_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used (busy time in /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def other_cpu(fn: Callable[[], Any]) -> tuple[Any, float | None]:
    """``fn()``, and the cores other processes kept busy meanwhile (time-averaged).

    On a 2-core machine XLA splits large operations between both cores; a process that
    takes one of them makes every such operation wait for its slower half. That, not
    rtrlx, was the 80-150% spread of sub-millisecond steps: with one busy process beside
    it, snap(1) on a GRU (n = 128) spread 30% and 196% (XLA's threads off), against 5% on a
    quiet machine and 4% pinned to a core of its own. Timings report this figure so that
    a disturbed measurement shows as one.
    """
    machine, mine, tic = _machine_cpu_seconds(), time.process_time(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - tic
    after = _machine_cpu_seconds()
    if machine is None or after is None or wall <= 0:
        return out, None
    others = (after - machine) - (time.process_time() - mine)
    return out, max(others, 0.0) / wall


def _median_seconds(
    fn: Callable[[], Any], repeats: int
) -> tuple[float, float, float, float | None]:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    compile_seconds = time.perf_counter() - start

    def timed() -> list[float]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - start)
        return times

    times, load = other_cpu(timed)
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median, compile_seconds, load


#: Pseudo-learner: the forward pass and the loss only, the cost ``online_deep`` is held to.
INFERENCE = "inference"
#: Suffix that times a learner's streaming ``step`` even when it has a whole-sequence path.
STREAM = "/stream"


def resolve_learner(spec: str) -> Any:
    """A learner by its bench name: a registry name, ``NAME/stream``, or ``inference``."""
    if spec == INFERENCE:
        return None
    if spec.endswith(STREAM):
        return make(spec[: -len(STREAM)])._replace(sequence=None)
    return make(spec)


def problem(
    cell: str,
    *,
    hidden: int,
    steps: int,
    batch: int,
    input_size: int,
    layers: int = 1,
    seed: int = 0,
) -> tuple[Any, Any, Any, Any]:
    """``(cell, head, xs, ys)`` for a benchmark: a random sequence and zero targets."""
    from ..train import make_cell

    k_cell, k_head, k_x = jax.random.split(jax.random.key(seed), 3)
    module = make_cell(cell, input_size, hidden, layers, k_cell)
    head = eqx.nn.Linear(module.output_size, 8, key=k_head)
    xs = jax.random.normal(k_x, (steps, batch, input_size))
    ys = jnp.zeros((steps, batch, 8))
    return module, head, xs, ys


def _inference(module: Any, head: Any, xs: Any, ys: Any) -> Any:
    """The summed loss of a batch of sequences, forward only."""

    def body(carry, xy):
        h, total = carry
        x, y = xy
        h = jax.vmap(module)(h, x)
        out = jax.vmap(lambda s: head(module.features(s)))(h)
        return (h, total + jnp.mean(jax.vmap(mse)(out, y))), None

    h0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (xs.shape[1], *a.shape)), module.init_state())
    (_, total), _ = jax.lax.scan(body, (h0, jnp.zeros((), xs.dtype)), (xs, ys))
    return total


def _function(
    spec: str, module: Any, head: Any, by_stream: bool | None = None
) -> Callable[[Any, Any], Any]:
    """``f(xs, ys)``: what is timed for ``spec``."""
    built = resolve_learner(spec)
    if built is None:
        return lambda xs, ys: _inference(module, head, xs, ys)
    key = jax.random.key(0)  # the timing does not depend on the draws
    return lambda xs, ys: sequence_grads(
        built, module, head, mse, xs, ys, key=key, by_stream=by_stream
    )


def runs_by_stream(spec: str, module: Any, batch: int, by_stream: bool | None = None) -> bool:
    """Whether ``sequence_grads`` runs ``spec``'s streams one after another on this batch."""
    built = resolve_learner(spec)
    if built is None or built.sequence is not None or batch < 2:
        return False
    return use_by_stream(built, module, by_stream)


def compiled_memory(
    learner: str,
    cell: str,
    *,
    hidden: int,
    steps: int,
    batch: int,
    input_size: int = 16,
    layers: int = 1,
    by_stream: bool | None = None,
) -> dict[str, int]:
    """XLA's memory plan for ``learner`` over ``steps`` steps, from compiling alone.

    ``temp_bytes`` is the working memory the compiled computation allocates besides its
    inputs and outputs: what a streaming learner keeps flat in T and BPTT grows. No step
    runs, so long sequences cost only the compilation. ``by_stream`` is passed to
    :func:`rtrlx.sequence_grads`.

    Returns:
        ``{"temp_bytes", "argument_bytes", "output_bytes"}``.
    """
    module, head, _, _ = problem(
        cell, hidden=hidden, steps=1, batch=batch, input_size=input_size, layers=layers
    )
    fn = jax.jit(_function(learner, module, head, by_stream))
    dtype = jnp.zeros(()).dtype
    compiled = fn.lower(
        jax.ShapeDtypeStruct((steps, batch, input_size), dtype),
        jax.ShapeDtypeStruct((steps, batch, 8), dtype),
    ).compile()
    stats = compiled.memory_analysis()
    if stats is None:  # pragma: no cover - every current backend reports it
        raise RuntimeError("this JAX backend reports no memory analysis")
    return {
        "temp_bytes": int(stats.temp_size_in_bytes),
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
    }


def time_per_step(
    learner: str,
    cell: str,
    *,
    hidden: int,
    steps: int,
    batch: int,
    input_size: int = 16,
    repeats: int = 5,
    seed: int = 0,
    layers: int = 1,
    by_stream: bool | None = None,
) -> SpeedResult:
    """Median seconds per step of ``sequence_grads`` for ``learner`` on a random sequence.

    The whole sequence runs under one ``jit`` (compiled once, timed ``repeats`` times after a
    warm-up), so the time is the steady-state cost of the learner, not of Python.

    Args:
        learner: learner name, e.g. ``"snap:1"``; ``"NAME/stream"`` times the streaming
            ``step`` of a learner that has a whole-sequence path; ``"inference"`` times the
            forward pass and loss alone.
        cell: cell name, e.g. ``"gru"``, or ``"deep-lru"`` for a DeepRecurrent stack.
        hidden: units (``d_model`` of a stack).
        steps: sequence length measured.
        batch: streams in the batch.
        input_size: input features.
        repeats: timed repetitions (>= 1); the median is reported.
        seed: seed of parameters and data.
        layers: blocks of a ``deep-*`` stack.
        by_stream: passed to :func:`rtrlx.sequence_grads` (None: its automatic choice).

    Returns:
        A :class:`SpeedResult`.
    """
    module, head, xs, ys = problem(
        cell,
        hidden=hidden,
        steps=steps,
        batch=batch,
        input_size=input_size,
        layers=layers,
        seed=seed,
    )
    built = resolve_learner(learner)
    state = None
    if built is None:
        state_floats = _floats(module.init_state())
    elif built.online:
        state = jax.eval_shape(lambda: built.init(module, key=jax.random.key(0)))
        state_floats = _floats(state)
    else:
        state_floats = steps * _floats(module.init_state())
    run = jax.jit(_function(learner, module, head, by_stream))
    median, spread, compile_seconds, load = _median_seconds(lambda: run(xs, ys), repeats)
    flops = influence = None
    if built is not None and built.online:
        flops = xla_flops(learner.removesuffix(STREAM), module, head, batch)
        if isinstance(state, RTRLState):  # carries exact RTRL's dense influence matrix
            influence = influence_flops(module, batch)
    return SpeedResult(
        learner=learner,
        cell=cell,
        hidden=hidden,
        batch=batch,
        steps=steps,
        seconds_per_step=median / steps,
        spread=spread,
        compile_seconds=compile_seconds,
        repeats=repeats,
        state_floats=state_floats,
        flops_per_step=flops,
        influence_flops_per_step=influence,
        by_stream=runs_by_stream(learner, module, batch, by_stream),
        other_load=load,
    )
