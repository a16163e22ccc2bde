"""Time per step of a learner, and of BPTT on the same cell and sequence, in one run."""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..cells import CELLS
from ..learners import make
from ..losses import mse
from ..sequence import sequence_grads


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


def _median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, float, float]:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    compile_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median, compile_seconds


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
) -> SpeedResult:
    """Median seconds per step of ``sequence_grads`` for ``learner`` on a random sequence.

    The whole sequence runs under one ``jit`` (compiled once, timed ``repeats`` times after a
    warm-up), so the time is the steady-state cost of the learner, not of Python.

    Args:
        learner: learner name, e.g. ``"snap:1"``.
        cell: cell name, e.g. ``"gru"``.
        hidden: units.
        steps: sequence length measured.
        batch: streams in the batch.
        input_size: input features.
        repeats: timed repetitions (>= 1); the median is reported.
        seed: seed of parameters and data.

    Returns:
        A :class:`SpeedResult`.
    """
    key = jax.random.key(seed)
    k_cell, k_head, k_x = jax.random.split(key, 3)
    cell_cls: Any = CELLS[cell]
    module = cell_cls(input_size, hidden, key=k_cell)
    head = eqx.nn.Linear(module.output_size, 8, key=k_head)
    xs = jax.random.normal(k_x, (steps, batch, input_size))
    ys = jnp.zeros((steps, batch, 8))
    built = make(learner)
    if built.online:
        state_floats = _floats(jax.eval_shape(lambda: built.init(module, key=jax.random.key(0))))
    else:
        state_floats = steps * _floats(module.init_state())
    run = eqx.filter_jit(sequence_grads)
    median, spread, compile_seconds = _median_seconds(
        lambda: run(built, module, head, mse, xs, ys), repeats
    )
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
    )
