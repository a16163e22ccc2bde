"""One trial of a sweep: one run of an rtrlx command, in the Ray worker's process.

The trial runs the command's entry point in-process (``rtrlx.cli:main`` by default) with
``--out`` set to its own run directory, so the run gets everything the run driver gives
(checkpoints, resume, metrics.jsonl, result.json). While it runs, every chunk's record that
carries the sweep's metric is reported to Ray Tune (:func:`rtrlx.driver.watching`), which
is what ASHA stops trials on; the final report is the run's result.

Each trial keeps ``trial.json`` in its run directory (its point, status, metric, steps,
error), updated at every report, so the sweep's table needs nothing but the directory.
"""

import contextlib
import importlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from ..driver import watching, write_json
from .spec import SweepSpec, trial_argv

TRIAL_FILE = "trial.json"
#: Each command's result and metrics files in its run directory.
RUN_FILES = {
    "train": ("result.json", "metrics.jsonl"),
    "lm": ("result.json", "metrics.jsonl"),
    "rl": ("summary.json", "curves.jsonl"),
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class TrialError(RuntimeError):
    """A trial's command failed; the message is the command's own error."""


class _Stopped(BaseException):
    """Tune stopped the trial at a report; passes through the command (not an error)."""


def metric_value(record: Mapping[str, Any], metric: str) -> float | None:
    """The metric in a record, averaged over seeds when it is a list (rl); None if absent."""
    value = record.get(metric)
    if isinstance(value, list):
        values = [v for v in value if isinstance(v, int | float) and math.isfinite(v)]
        return sum(values) / len(values) if values else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def final_value(result: Mapping[str, Any], records: list[dict], metric: str) -> float | None:
    """The run's final metric: the result's own figure, else the last record's.

    ``train`` and ``lm`` name their headline metric and value in result.json; ``rl`` keeps
    ``final_<metric>`` per seed (the mean over the last tenth of the run).
    """
    if result.get("metric") == metric and metric_value(result, "value") is not None:
        return metric_value(result, "value")
    for source in (result, result.get("metrics") or {}):
        if metric_value(source, metric) is not None:
            return metric_value(source, metric)
    per_seed = [r.get(f"final_{metric}") for r in result.get("records") or []]
    if metric_value({"v": per_seed}, "v") is not None:
        return metric_value({"v": per_seed}, "v")
    for record in reversed(records):
        if metric_value(record, metric) is not None:
            return metric_value(record, metric)
    return None


def read_trial(run_dir: str) -> dict | None:
    """The trial's ``trial.json``, or None when it never started."""
    try:
        with open(os.path.join(run_dir, TRIAL_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_trial(
    point: Mapping[str, Any],
    run_dir: str,
    spec: SweepSpec,
    metric: str,
    *,
    entry: str,
    report: Callable[[dict], None] | None = None,
) -> dict:
    """Run one trial to its end and return its ``trial.json`` record.

    A run directory that holds a finished run is read, not rerun; one that holds a
    checkpoint is resumed (a trial killed with its sweep goes on where it stopped).

    Args:
        point: the trial's axis values.
        run_dir: the trial's run directory (the command's ``--out``).
        spec: the sweep.
        metric: the metric to report.
        entry: ``"module:function"``, the command line's entry point (``argv -> exit code``):
            ``"rtrlx.cli:main"``.
        report: called with each metrics dict (``tune.report`` in a Ray trial).

    Returns:
        The trial record: ``point``, ``status`` ("done"), ``value``, ``step``, ``seconds``.

    Raises:
        TrialError: the command failed (its own message, also saved in ``trial.json``), or
            its run never recorded ``metric`` (the message lists what it did record).
    """
    record = {
        "point": dict(point),
        "run_dir": run_dir,
        "status": "running",
        "value": None,
        "step": 0,
        "error": None,
        "xla_flags": os.environ.get("XLA_FLAGS"),  # the threads the sweep gave this trial
    }
    tic = time.perf_counter()

    def send(metrics: dict) -> None:
        record.update(value=metrics[metric], step=metrics["step"])
        record["seconds"] = time.perf_counter() - tic
        write_json(os.path.join(run_dir, TRIAL_FILE), record)
        if report is None:
            return
        try:
            report(metrics)
        except SystemExit:  # Tune stops a trial (ASHA) by exiting its thread at a report
            if record["status"] != "done":  # a finished run stopped at its last report is done
                record["status"] = "stopped"
            write_json(os.path.join(run_dir, TRIAL_FILE), record)
            raise _Stopped from None

    os.makedirs(run_dir, exist_ok=True)
    try:
        return _run(point, run_dir, spec, metric, entry, record, send, tic)
    except _Stopped:
        raise SystemExit(0) from None  # how Tune expects a stopped trial's thread to end


def _run(
    point: Mapping[str, Any],
    run_dir: str,
    spec: SweepSpec,
    metric: str,
    entry: str,
    record: dict,
    send: Callable[[dict], None],
    tic: float,
) -> dict:
    """:func:`run_trial`'s work: the command (unless it finished before), then its result."""

    def on_record(chunk: dict, steps: int) -> None:
        value = metric_value(chunk, metric)
        # the last chunk's figure is reported with the result, after the run has ended: a
        # stop (ASHA at its max_t) must not cut off the run's final evaluation
        if value is not None and chunk["step"] < steps:
            send({"step": chunk["step"], metric: value})

    files = RUN_FILES[spec.command]
    result = _finished(run_dir, files[0])
    if result is None:
        argv = trial_argv(spec, point, run_dir)
        if os.path.exists(os.path.join(run_dir, "checkpoint.eqx")):
            argv.append("--resume")
        with watching(on_record):
            code, text = _call(entry, argv)
        if code != 0:
            _fail(record, run_dir, tic, _error_line(text, spec.command, code))
        result = _finished(run_dir, files[0]) or {}
    records = _records(run_dir, files[1])
    value = final_value(result, records, metric)
    step = result.get("steps") or (records[-1]["step"] if records else 0)
    if value is None:
        _fail(record, run_dir, tic, _no_metric(metric, records))
    record["status"] = "done"
    send({"step": step, metric: value, "final": True})
    return record


def _fail(record: dict, run_dir: str, tic: float, message: str) -> NoReturn:
    """Record the trial as failed with ``message`` and raise it."""
    record.update(status="failed", error=message, seconds=time.perf_counter() - tic)
    write_json(os.path.join(run_dir, TRIAL_FILE), record)
    raise TrialError(message)


def _no_metric(metric: str, records: list[dict]) -> str:
    """Why a finished run has no value for the sweep's metric, and what it has instead."""
    seen = sorted({k for r in records for k, v in r.items() if metric_value(r, k) is not None})
    return (
        f"the run finished but recorded no value of {metric!r}; its records have: "
        f"{', '.join(seen) or 'nothing'}. Name one of them with --metric."
    )


def _call(entry: str, argv: list[str]) -> tuple[int, str]:
    """Run ``entry(argv)``, its output captured; (exit code, what it printed to stderr)."""
    module, _, name = entry.partition(":")
    main = getattr(importlib.import_module(module), name)
    err, out = io.StringIO(), io.StringIO()
    # rich wraps what it prints to a file at COLUMNS (80 by default): one message, one line
    wide = {"COLUMNS": "100000"}
    with _environ(wide), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's refusal of a flag
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception as exc:  # a bug in the command: the trial fails, the sweep goes on
            code, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    return int(code or 0), err.getvalue()


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _error_line(text: str, command: str, code: int) -> str:
    """The command's error message from its stderr (its last non-empty lines, plain)."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    ours = [line for line in lines if line.startswith(f"rtrlx {command}")]
    picked = ours[-1:] or lines[-3:]
    message = " ".join(picked)
    return message or f"rtrlx {command} exited with status {code} and no message"


def _finished(run_dir: str, name: str) -> dict | None:
    """The run's result (``name``) when the run finished (not interrupted), else None."""
    try:
        with open(os.path.join(run_dir, name)) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    return None if result.get("interrupted") else result


def _records(run_dir: str, name: str) -> list[dict]:
    from ..driver import read_records

    try:
        return read_records(run_dir, name)
    except OSError:
        return []
