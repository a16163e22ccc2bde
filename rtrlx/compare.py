"""Several learners trained online with everything else equal: what ``rtrlx compare`` runs.

``compare(TrainConfig(...), ["rtrl", "uoro"], seeds=2, out="runs/x")`` trains every learner
with every seed on the run driver (each run in ``out/<learner>-seed<s>/``), then writes
``out/summary.json`` (one row per run, failed runs with their error) and ``out/curves.png``
(the task's metric against steps), and returns the per-learner table the command prints.
"""

import dataclasses
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from ._errors import NotOnlineError, RtrlxError, UnsupportedCellError
from ._extras import require
from .driver import TrainingError, locked, write_json
from .tasks import make as make_task
from .train import TrainConfig, train

#: The keys of a run's row in ``summary.json``.
ROW_KEYS = (
    "learner",
    "seed",
    "task",
    "metric",
    "value",
    "steps",
    "steps_per_second",
    "state_mb",
    "error",
)


class CompareError(RtrlxError):
    """Every run of a comparison failed; the message lists each run's error."""


def compare(
    base: TrainConfig,
    learners: Sequence[str],
    *,
    seeds: int = 1,
    out: str = "runs/compare",
    on_start: Callable[[TrainConfig], None] | None = None,
    on_chunk: Callable[[TrainConfig, dict], None] | None = None,
    on_end: Callable[[TrainConfig, dict], None] | None = None,
) -> dict:
    """Train each of ``learners`` with seeds ``base.seed .. base.seed + seeds - 1``.

    Everything but the learner and the seed is ``base``. A run that diverges
    (:class:`rtrlx.driver.TrainingError`) is recorded with its error and the comparison
    goes on; Ctrl-C stops after the interrupted run (its checkpoint saved) and writes what
    there is. Re-running a comparison in the same ``out`` replaces its runs (``out`` is
    locked while it runs, so two comparisons never share it).

    Args:
        base: the configuration every run shares.
        learners: learner names (``rtrlx.learners.make``).
        seeds: seeds per learner.
        out: the directory of the comparison.
        on_start: called with each run's config before it starts.
        on_chunk: called with a run's config and each of its chunk records.
        on_end: called with a run's config and its result (with ``"error"`` if it failed).

    Returns:
        A dict: ``config`` (what was compared), ``metric``, ``title``, ``results`` (one row
        per run, as in ``summary.json``), ``table`` (per learner: ``learner``, ``mean``,
        ``sd``, ``values``, ``steps_per_second``, ``state_mb``, ``errors``),
        ``interrupted``, ``summary`` and ``curves`` (the files written; ``curves`` is None
        when no run has a curve).

    Raises:
        CompareError: every run failed (``summary.json`` is written first, with the errors).
        ValueError: for a bad configuration or learner, before anything runs.
        rtrlx.driver.RunError: ``out`` is unusable, or another run holds it.

    Examples:
        >>> import tempfile
        >>> from rtrlx.train import TrainConfig
        >>> base = TrainConfig(task="adding", cell="gru", hidden=4, steps=40, batch=2,
        ...                    chunk=20, task_params={"length": 10})
        >>> with tempfile.TemporaryDirectory() as out:
        ...     result = compare(base, ["snap:1", "rtrl"], out=out)
        >>> [row["learner"] for row in result["table"]], result["metric"]
        (['snap:1', 'rtrl'], 'mse')
    """
    if not learners or seeds < 1:
        raise ValueError(
            f"nothing to compare: give at least one learner (got {list(learners)}) and "
            f"seeds >= 1 (got {seeds})."
        )
    configs = [
        dataclasses.replace(base, learner=learner, seed=base.seed + s)
        for learner in learners
        for s in range(seeds)
    ]
    for config in configs[::seeds]:
        config.validate()
    task = make_task(base.task, **base.task_params)[0]
    with locked(out):
        results, curves, interrupted = _run_all(configs, out, on_start, on_chunk, on_end)
        return _report(base, learners, seeds, out, task, results, curves, interrupted)


def _run_all(
    configs: list[TrainConfig],
    out: str,
    on_start: Callable[[TrainConfig], None] | None,
    on_chunk: Callable[[TrainConfig, dict], None] | None,
    on_end: Callable[[TrainConfig, dict], None] | None,
) -> tuple[list[dict], dict[str, list[list[dict]]], bool]:
    """Every run, one after another: results, curves by learner, and whether interrupted."""
    results: list[dict] = []
    curves: dict[str, list[list[dict]]] = {}
    for config in configs:
        run_dir = os.path.join(out, f"{config.learner.replace(':', '-')}-seed{config.seed}")
        records: list[dict] = []

        def record(r: dict, config: TrainConfig = config, records: list = records) -> None:
            records.append(r)
            if on_chunk:
                on_chunk(config, r)

        if on_start:
            on_start(config)
        try:
            result = train(config, out=run_dir, overwrite=True, on_chunk=record)
        except (TrainingError, UnsupportedCellError, NotOnlineError) as exc:
            # One run that diverges, or a learner that refuses the task's own model, is a row
            # with its error; the other runs and the summary go on.
            result = {"learner": config.learner, "seed": config.seed, "task": config.task}
            result["error"] = str(exc)
        if on_end:
            on_end(config, result)
        results.append(result)
        curves.setdefault(config.learner, []).append(records)
        if result.get("interrupted"):
            return results, curves, True
    return results, curves, False


def _report(
    base: TrainConfig,
    learners: Sequence[str],
    seeds: int,
    out: str,
    task: Any,
    results: list[dict],
    curves: dict[str, list[list[dict]]],
    interrupted: bool,
) -> dict:
    """Write ``summary.json`` and ``curves.png``; the comparison's table."""
    rows = [{k: r.get(k) for k in ROW_KEYS} for r in results]
    shared = {k: v for k, v in dataclasses.asdict(base).items() if k != "learner"}
    config = shared | {"learners": list(learners), "seeds": seeds, "out": out}
    summary = os.path.join(out, "summary.json")
    write_json(summary, {"config": config, "results": rows})
    failed = [r for r in rows if r["error"]]
    if rows and len(failed) == len(rows):
        raise CompareError(
            f"every run failed ({len(rows)}); summary in {summary}:\n"
            + "\n".join(f"- {r['learner']} seed {r['seed']}: {r['error']}" for r in failed)
        )
    metric = task.metric
    model = "the task's own model" if getattr(task, "model", None) else None
    model = model or f"{base.cell} n={base.hidden}"
    title = f"{base.task}, {model}, {base.steps} steps, batch {base.batch}, {seeds} seed(s)"
    table = [
        _table_row(learner, [r for r in rows if r["learner"] == learner]) for learner in learners
    ]
    path = os.path.join(out, "curves.png")
    drawn = plot_curves(curves, metric, path, title=title)
    return {
        "config": config,
        "metric": metric,
        "title": title,
        "results": rows,
        "table": table,
        "interrupted": interrupted,
        "summary": summary,
        "curves": path if drawn else None,
    }


def _table_row(learner: str, rows: list[dict]) -> dict:
    """One learner's line of the table: the metric's mean and spread over its seeds."""
    values = [r["value"] for r in rows if r["value"] is not None]
    speed = [r["steps_per_second"] for r in rows if r["steps_per_second"]]
    memory = [r["state_mb"] for r in rows if r["state_mb"] is not None]
    return {
        "learner": learner,
        "mean": statistics.mean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
        "steps_per_second": statistics.median(speed) if speed else None,
        "state_mb": memory[0] if memory else None,
        "errors": [r["error"] for r in rows if r["error"]],
    }


def plot_curves(curves: dict[str, list[list[dict]]], metric: str, path: str, title: str) -> bool:
    """Each run's ``metric`` against steps, one colour per learner; False if none has a point.

    Nothing is written when no run has a point (an empty plot would look like a result).
    """
    points = {
        learner: [[(r["step"], r[metric]) for r in rs if r.get(metric) is not None] for rs in runs]
        for learner, runs in curves.items()
    }
    if not any(pts for runs in points.values() for pts in runs):
        return False
    matplotlib = require("matplotlib", "rtrlx.compare's curves.png")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "rtrlx.compare's curves.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, (learner, runs) in enumerate(points.items()):
        for i, pts in enumerate(runs):
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    color=f"C{index}",
                    alpha=0.8,
                    label=learner if i == 0 else None,
                )
    values = [p[1] for runs in points.values() for pts in runs for p in pts]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")  # e.g. a loss that converges for some learners and not others
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
