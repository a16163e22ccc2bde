"""The default benchmark suite: the configurations rtrlx is held to, with their targets.

Each :class:`Case` is a cell, sizes and learners timed against BPTT in one run; each
:class:`Target` reads the case's measurements and says whether a goal is met. The targets
are those of the project's speed issue: ratios to BPTT measured in the same run, and
absolute times against the research implementations measured on this kind of 2-core
machine (their times are in each target's text).
"""

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .flops import matmul_rate
from .speed import SpeedResult, compiled_memory, time_per_step


@dataclass(frozen=True)
class Target:
    """A goal on a case's measurements.

    Attributes:
        text: what is promised, and against what.
        measure: ``measure(results, context) -> (value, met)``; ``results`` maps
            ``(learner, hidden)`` to a :class:`SpeedResult`, ``context`` holds the matmul
            rate and the memory plans.
        unit: how ``value`` reads.
    """

    text: str
    measure: Callable[[dict, dict], tuple[float, bool]]
    unit: str


@dataclass(frozen=True)
class Case:
    """One configuration: ``learners`` and BPTT on ``cell`` at each of ``hidden``."""

    name: str
    cell: str
    hidden: tuple[int, ...]
    learners: tuple[str, ...]
    steps: int
    batch: int
    input_size: int = 16
    layers: int = 1
    learner_steps: dict[str, int] = field(default_factory=dict)  # shorter T for costly ones
    memory_steps: tuple[int, ...] = ()
    targets: tuple[Target, ...] = ()


def _ms(learner: str, hidden: int, limit: float) -> Callable[[dict, dict], tuple[float, bool]]:
    def measure(results: dict, context: dict) -> tuple[float, bool]:
        ms = 1e3 * results[(learner, hidden)].seconds_per_step
        return ms, ms <= limit

    return measure


def _ratio(learner: str, hidden: int, limit: float) -> Callable[[dict, dict], tuple[float, bool]]:
    def measure(results: dict, context: dict) -> tuple[float, bool]:
        r = (
            results[(learner, hidden)].seconds_per_step
            / results[("bptt", hidden)].seconds_per_step
        )
        return r, r <= limit

    return measure


def _matmul_share(hidden: int, floor: float) -> Callable[[dict, dict], tuple[float, bool]]:
    def measure(results: dict, context: dict) -> tuple[float, bool]:
        r: SpeedResult = results[("rtrl", hidden)]
        share = (r.influence_flops_per_step or 0) / r.seconds_per_step / context["matmul"]
        return share, share >= floor

    return measure


def _same_shape_share(hidden: int, floor: float) -> Callable[[dict, dict], tuple[float, bool]]:
    def measure(results: dict, context: dict) -> tuple[float, bool]:
        r: SpeedResult = results[("rtrl", hidden)]
        influence = r.influence_flops_per_step or 0
        # The influence update's own shape: batch x (S n x S n) @ (S n x P).
        rows = hidden  # S = 1 for the GRU
        params = influence // (r.batch * (2 * rows * rows + rows))
        rate = matmul_rate(shape=(r.batch, rows, rows, params), repeats=3)
        context.setdefault("same_shape_matmul", {})[hidden] = rate
        share = influence / r.seconds_per_step / rate
        return share, share >= floor

    return measure


def _flat_memory(learner: str, tolerance: float) -> Callable[[dict, dict], tuple[float, bool]]:
    def measure(results: dict, context: dict) -> tuple[float, bool]:
        plans = sorted(
            (m for m in context["memory"] if m["learner"] == learner), key=lambda m: m["T"]
        )
        growth = plans[-1]["temp_bytes"] / max(plans[0]["temp_bytes"], 1)
        return growth, growth <= 1 + tolerance

    return measure


#: Where the ratios against outside code come from: the suite cannot run them (each needs its
#: own environment), and a reference timed on another day is not a ratio.
REFERENCES_NOTE = (
    "Ratios against the research code (the official OK code, braintrace) are measured in the "
    "same run as the reference: python benchmarks/side_by_side.py (see its docstring)."
)

#: The default suite (about 4 minutes on 2 CPU cores).
DEFAULT: tuple[Case, ...] = (
    Case(
        "rnn64",
        "elman",
        (64,),
        ("rtrl", "kf_rtrl", "uoro", "rflo"),
        steps=1000,
        batch=1,
        targets=(
            Target(
                "KF-RTRL <= 0.04 ms/step (5x the numpy framework's 0.2 ms on another day)",
                _ms("kf_rtrl", 64, 0.04),
                "ms",
            ),
            Target(
                "UORO <= 0.04 ms/step (5x the numpy framework's 0.2 ms on another day)",
                _ms("uoro", 64, 0.04),
                "ms",
            ),
            Target(
                "RFLO <= 0.024 ms/step (5x the numpy framework's 0.12 ms on another day)",
                _ms("rflo", 64, 0.024),
                "ms",
            ),
            Target(
                "RTRL <= 0.26 ms/step (5x the numpy framework's 1.3 ms on another day)",
                _ms("rtrl", 64, 0.26),
                "ms",
            ),
        ),
    ),
    Case(
        "ok-rhn128",
        "rhn",
        (128,),
        ("ok:16",),
        steps=200,
        batch=16,
        learner_steps={"ok:16": 20},
        # Its ratio to the official TF code is measured in the same run as the reference:
        # benchmarks/side_by_side.py (REFERENCES_NOTE).
        targets=(),
    ),
    Case(
        "gru",
        "gru",
        (32, 64, 128),
        ("rtrl", "snap:1"),
        steps=1000,
        batch=16,
        learner_steps={"rtrl": 10},
        targets=(
            Target(
                "exact RTRL, n=128: influence update >= 60% of the matmul rate",
                _matmul_share(128, 0.6),
                "of matmul",
            ),
            Target(
                "exact RTRL, n=128: >= 90% of a same-shape batched matmul (16 x 128x128 @ "
                "128xP) measured alone",
                _same_shape_share(128, 0.9),
                "of matmul",
            ),
        ),
    ),
    Case(
        "diag-lru256",
        "lru",
        (256,),
        ("diag_rtrl", "diag_rtrl/stream"),
        steps=10_000,
        batch=16,
        memory_steps=(1000, 10_000, 100_000),
        targets=(
            Target(
                "diag_rtrl <= 1.0x BPTT (same run; sequence_grads, chunked)",
                _ratio("diag_rtrl", 256, 1.0),
                "x",
            ),
            Target(
                "diag_rtrl streaming step <= 1.0x BPTT (same run)",
                _ratio("diag_rtrl/stream", 256, 1.0),
                "x",
            ),
            Target(
                "diag_rtrl memory at T=100k within 10% of T=1k (chunked)",
                _flat_memory("diag_rtrl", 0.1),
                "x",
            ),
            Target(
                "diag_rtrl memory at T=100k within 10% of T=1k (streaming)",
                _flat_memory("diag_rtrl/stream", 0.1),
                "x",
            ),
        ),
    ),
    Case(
        "online-deep",
        "deep-lru",
        (64, 128),
        (
            "online_deep",
            "online_deep/stream",
            "online_deep:snap1",
            "online_deep:snap1/stream",
            "inference",
        ),
        steps=48,
        batch=50,
        input_size=8,
        targets=(
            Target(
                "online_deep, d_model 64: <= 1.0x BPTT (the reference: 5.7-7.8x)",
                _ratio("online_deep", 64, 1.0),
                "x",
            ),
            Target(
                "online_deep, d_model 128: <= 1.0x BPTT",
                _ratio("online_deep", 128, 1.0),
                "x",
            ),
            Target(
                "online_deep:snap1 (the reference's rule), d_model 64: <= 1.0x BPTT",
                _ratio("online_deep:snap1", 64, 1.0),
                "x",
            ),
            Target(
                "online_deep:snap1, d_model 128: <= 1.0x BPTT",
                _ratio("online_deep:snap1", 128, 1.0),
                "x",
            ),
            Target(
                "online_deep:snap1 streaming step, d_model 64: <= 1.0x BPTT",
                _ratio("online_deep:snap1/stream", 64, 1.0),
                "x",
            ),
        ),
    ),
)

#: A seconds-long suite for tests: the same code paths on tiny sizes.
TINY: tuple[Case, ...] = (
    Case(
        "tiny",
        "gru",
        (4,),
        ("rtrl", "snap:1"),
        steps=10,
        batch=2,
        input_size=2,
        memory_steps=(10, 100),
        targets=(
            Target("rtrl within 1000x BPTT", _ratio("rtrl", 4, 1000.0), "x"),
            Target("snap:1 memory flat", _flat_memory("snap:1", 0.1), "x"),
        ),
    ),
)

SUITES = {"default": DEFAULT, "tiny": TINY}


_CHILD = (
    "import json, sys\n"
    "from rtrlx.bench.speed import time_per_step\n"
    "print(json.dumps(time_per_step(**json.loads(sys.argv[1])).as_dict()))\n"
)


def _time_in_fresh_process(**kwargs: Any) -> SpeedResult:
    """:func:`time_per_step` in a new Python process, so no earlier measurement shapes it.

    One process runs every learner of a suite otherwise, and a case that allocates
    gigabytes (the scan path of ``online_deep``) left the next learner's timing 1.3-1.6x
    slower than the same learner timed alone (measured: online_deep:snap1, d_model 64).
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"timing {kwargs.get('learner')} on {kwargs.get('cell')} in a fresh process "
            f"failed:\n{done.stderr[-3000:]}"
        )
    return SpeedResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_suite(
    cases: tuple[Case, ...],
    *,
    repeats: int = 5,
    on_progress: Callable[[str], None] | None = None,
    isolate: bool = True,
) -> dict:
    """Measure every case and evaluate its targets.

    Args:
        cases: the suite, e.g. :data:`DEFAULT`.
        repeats: timed repetitions per measurement (the median is kept).
        on_progress: called with a description before each measurement.
        isolate: time every (case, learner, size) in a fresh process (a second or two
            each), so that one measurement's allocations do not slow the next.

    Returns:
        ``{"matmul_flops_per_second", "same_shape_matmul_flops_per_second", "cases":
        [{"case", "results", "memory", "targets"}]}``, JSON-ready; each result also holds
        ``memory_bytes``, XLA's working-memory plan for the whole sequence at the case's T.
    """
    say = on_progress or (lambda text: None)
    say("matmul rate")
    context: dict = {"matmul": matmul_rate()}
    out = []
    for case in cases:
        results: dict = {}
        peak: dict = {}  # XLA's working-memory plan at the case's T, by (learner, hidden)
        for hidden in case.hidden:
            for learner in ("bptt", *case.learners):
                say(f"{case.name}: {learner} on {case.cell} n={hidden}")
                timer = _time_in_fresh_process if isolate else time_per_step
                results[(learner, hidden)] = timer(
                    learner=learner,
                    cell=case.cell,
                    hidden=hidden,
                    steps=case.learner_steps.get(learner, case.steps),
                    batch=case.batch,
                    input_size=case.input_size,
                    repeats=repeats,
                    layers=case.layers,
                )
                say(f"{case.name}: memory plan of {learner} on {case.cell} n={hidden}")
                plan = compiled_memory(
                    learner,
                    case.cell,
                    hidden=hidden,
                    steps=case.steps,  # every learner at the case's full T
                    batch=case.batch,
                    input_size=case.input_size,
                    layers=case.layers,
                )
                peak[(learner, hidden)] = plan["temp_bytes"]
        memory = []
        for learner in ("bptt", *case.learners) if case.memory_steps else ():
            for steps in case.memory_steps:
                say(f"{case.name}: memory plan of {learner} at T={steps}")
                plan = compiled_memory(
                    learner,
                    case.cell,
                    hidden=case.hidden[-1],
                    steps=steps,
                    batch=case.batch,
                    input_size=case.input_size,
                    layers=case.layers,
                )
                memory.append({"learner": learner, "hidden": case.hidden[-1], "T": steps, **plan})
        context["memory"] = memory
        targets = []
        for target in case.targets:
            value, met = target.measure(results, context)
            targets.append(
                {"target": target.text, "value": value, "unit": target.unit, "met": met}
            )
        out.append(
            {
                "case": case.name,
                "cell": case.cell,
                "batch": case.batch,
                "input": case.input_size,
                "results": [
                    r.as_dict() | {"memory_bytes": peak[key], "memory_T": case.steps}
                    for key, r in results.items()
                ],
                "memory": memory,
                "targets": targets,
            }
        )
    return {
        "matmul_flops_per_second": context["matmul"],
        "same_shape_matmul_flops_per_second": context.get("same_shape_matmul", {}),
        "cases": out,
    }


def plot_suite(report: dict, directory: str) -> list[str]:
    """``time_vs_n.png`` (cases timed at several sizes) and ``memory_vs_T.png``.

    Returns:
        The paths written.
    """
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    scaling = [c for c in report["cases"] if len({r["hidden"] for r in c["results"]}) > 1]
    if scaling:
        fig, axes = plt.subplots(1, len(scaling), figsize=(5 * len(scaling), 4), squeeze=False)
        for ax, case in zip(axes[0], scaling, strict=True):
            learners = list(dict.fromkeys(r["learner"] for r in case["results"]))
            for i, learner in enumerate(learners):
                rows = sorted(
                    (r for r in case["results"] if r["learner"] == learner),
                    key=lambda r: r["hidden"],
                )
                ax.loglog(
                    [r["hidden"] for r in rows],
                    [1e3 * r["seconds_per_step"] for r in rows],
                    "o-",
                    color=f"C{i}",
                    label=learner,
                )
            ax.set_xlabel("hidden units n")
            ax.set_ylabel("ms per step")
            ax.set_title(f"{case['case']}: {case['cell']}, batch {case['batch']}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, "time_vs_n.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    with_memory = [c for c in report["cases"] if c["memory"]]
    if with_memory:
        fig, ax = plt.subplots(figsize=(6, 4))
        i = 0
        for case in with_memory:
            for learner in dict.fromkeys(m["learner"] for m in case["memory"]):
                rows = [m for m in case["memory"] if m["learner"] == learner]
                ax.loglog(
                    [m["T"] for m in rows],
                    [max(m["temp_bytes"], 1) / 1e6 for m in rows],
                    "o-",
                    color=f"C{i}",
                    label=f"{case['case']}: {learner}",
                )
                i += 1
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("working memory, MB (XLA's plan)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, "memory_vs_T.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
