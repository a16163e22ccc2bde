"""A sweep's results: per trial, per configuration (mean ± sd over seeds), as files and a plot.

Everything is read from the trials' ``trial.json`` files, so the results of a sweep (or of
the part of it that ran) can be rebuilt from its directory alone (:func:`rebuild`).
"""

import csv
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from ..driver import write_json
from .spec import SEED, config_key


def collect(
    the_plan: Any,
    out: str,
    errors: Mapping[int, Any] | None = None,
    *,
    seconds: float | None = None,
    concurrent: int | None = None,
    resumed: bool = False,
) -> dict:
    """The sweep's results from its trials' directories.

    Args:
        the_plan: the :class:`rtrlx.sweep.run.SweepPlan`.
        out: the sweep's directory.
        errors: Tune's error per trial index (for a trial that failed before it wrote its
            own message).
        seconds: the sweep's wall-clock in this call.
        concurrent: trials at once in this call.
        resumed: this call resumed the sweep (its trials per hour would mix calls: None).

    Returns:
        ``{"metric", "mode", "trials": [...], "table": [...], "seconds", "trials_per_hour",
        "unfinished", ...}``: ``trials`` one row per point (``status`` done, failed, stopped
        (by ASHA), interrupted (the sweep ended while it ran) or not run); ``table`` one row
        per configuration, best first; ``unfinished`` the trials ``--resume`` would run.
    """
    from .run import trial_dir

    errors = errors or {}
    trials = []
    for index, point in enumerate(the_plan.points):
        record = _read(os.path.join(trial_dir(out, index), "trial.json")) or {}
        status = record.get("status", "not run")
        error = record.get("error")
        if index in errors and status != "failed":
            status, error = "failed", error or _first_line(errors[index])
        if status == "running":  # the sweep ended (Ctrl-C, a kill) while it ran
            status = "interrupted"
        trials.append(
            {
                "index": index,
                **point,
                "status": status,
                "value": record.get("value"),
                "step": record.get("step", 0),
                "seconds": record.get("seconds"),
                "error": error,
            }
        )
    finished = [t for t in trials if t["status"] in ("done", "stopped", "failed")]
    rate = len(finished) / seconds * 3600 if seconds and finished and not resumed else None
    report = {
        "command": the_plan.spec.command,
        "metric": the_plan.metric,
        "mode": the_plan.mode,
        "axes": the_plan.spec.axes,
        "trials": trials,
        "table": table(trials, the_plan.spec.axes, the_plan.mode),
        "seconds": seconds,
        "concurrent": concurrent,
        "trials_per_hour": rate,
        "unfinished": len(trials) - len(finished),
    }
    return report


def table(trials: list[dict], axes: list[str], mode: str) -> list[dict]:
    """One row per configuration (the axes but the seed): mean ± sd over its finished seeds.

    The mean and sd are over the trials that ran to the end; stopped (ASHA) and failed
    trials are counted beside them. Rows are sorted best first; rows with no value last.
    """
    names = [a for a in axes if a != SEED]
    groups: dict[tuple, list[dict]] = {}
    for t in trials:
        groups.setdefault(config_key({n: t.get(n) for n in names}), []).append(t)
    rows = []
    for key, members in groups.items():
        values = [t["value"] for t in members if t["status"] == "done" and t["value"] is not None]
        mean = sum(values) / len(values) if values else None
        sd = _sd(values)
        rows.append(
            {
                **dict(key),
                "mean": mean,
                "sd": sd,
                "values": values,
                "seeds": len(members),
                "failed": sum(t["status"] == "failed" for t in members),
                "stopped": sum(t["status"] == "stopped" for t in members),
                "errors": sorted({t["error"] for t in members if t["error"]}),
            }
        )
    sign = -1.0 if mode == "max" else 1.0
    return sorted(rows, key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0)))


def write(report: dict, out: str) -> dict[str, str | None]:
    """Write ``results.json``, ``results.csv`` (one row per trial) and the plot; their paths."""
    paths: dict[str, str | None] = {
        "json": os.path.join(out, "results.json"),
        "csv": os.path.join(out, "results.csv"),
        "plot": os.path.join(out, f"{_file_name(report['metric'])}.png"),
    }
    write_json(str(paths["json"]), report)
    columns = ["index", *report["axes"], "status", "value", "step", "seconds", "error"]
    with open(str(paths["csv"]), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(report["trials"])
    if not plot(report, str(paths["plot"])):
        paths["plot"] = None
    return paths


def plot(report: dict, path: str) -> bool:
    """The metric against the first numeric swept axis, one line per learner (mean ± sd).

    With no numeric axis, against the first swept axis as categories. Returns False (and
    writes nothing) when there is no finished trial or no axis but the seed.
    """
    from .._extras import require

    axes = [a for a in report["axes"] if a != SEED]
    rows = [r for r in report["table"] if r["mean"] is not None]
    if not axes or not rows:
        return False
    numeric = [a for a in axes if a != "learner" and all(_is_number(r[a]) for r in rows)]
    x_axis = numeric[0] if numeric else next((a for a in axes if a != "learner"), axes[0])
    line_axes = [a for a in axes if a != x_axis]
    plt = require("matplotlib.pyplot", "rtrlx sweep's plot")
    lines: dict[str, list[dict]] = {}
    for r in rows:
        label = ", ".join(f"{a}={r[a]}" for a in line_axes) or report["metric"]
        lines.setdefault(label, []).append(r)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    categories = sorted({str(r[x_axis]) for r in rows})
    for label, members in sorted(lines.items()):
        if numeric:
            members = sorted(members, key=lambda r: r[x_axis])
            xs = [r[x_axis] for r in members]
        else:
            members = sorted(members, key=lambda r: categories.index(str(r[x_axis])))
            xs = [categories.index(str(r[x_axis])) for r in members]
        ax.errorbar(
            xs,
            [r["mean"] for r in members],
            yerr=[r["sd"] or 0.0 for r in members],
            marker="o",
            capsize=3,
            label=label,
        )
    if numeric:
        values = [r[x_axis] for r in rows]
        if min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(x_axis)
    ax.set_ylabel(f"{report['metric']} (mean ± sd over seeds)")
    ax.set_title(f"rtrlx sweep: {report['command']}, {len(report['trials'])} trials")
    if len(lines) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def rebuild(out: str) -> dict:
    """The results of the sweep in ``out`` from its files (no Ray needed)."""
    from .run import plan
    from .spec import from_dict

    saved = _read(os.path.join(out, "sweep.json"))
    if saved is None:
        raise FileNotFoundError(f"{out}: no sweep.json; is this a sweep's --out?")
    return collect(plan(from_dict(saved["spec"])), out)


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _sd(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _first_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def _file_name(metric: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in metric)
