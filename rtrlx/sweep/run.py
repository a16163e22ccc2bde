"""Run a sweep on Ray Tune: a local Ray instance by default, a cluster by its address.

Each point of the spec is one Tune trial, which runs one rtrlx command
(:func:`rtrlx.sweep.trial.run_trial`) in its own worker process with its own run directory,
``OUT/runs/tNNN``. The sweep's directory holds:

- ``sweep.json``: the spec, the metric and every trial's point (what ``--resume`` checks);
- ``tune/``: Ray Tune's experiment state (what ``--resume`` restores);
- ``runs/tNNN/``: each trial's run (checkpoint, metrics.jsonl, result.json, trial.json);
- ``results.json``, ``results.csv`` and a plot: written by :mod:`rtrlx.sweep.report`.

Trials run with one CPU each and one XLA thread each (``--xla_cpu_multi_thread_eigen=false``),
so a machine with c cores runs c trials at once without oversubscribing them.
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._errors import RtrlxError
from .._extras import require
from ..driver import locked, write_json
from .spec import SpecError, SweepSpec, from_dict, trial_argv
from .trial import TrialError, run_trial

SWEEP_FILE = "sweep.json"
TUNE_DIR = "tune"
#: XLA flags that keep a trial to one thread (appended to any the user set).
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def local_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def trial_dir(out: str, index: int) -> str:
    """Trial ``index``'s run directory in the sweep ``out``."""
    return os.path.join(out, "runs", f"t{index:03d}")


class SweepError(RtrlxError, ValueError):
    """A sweep that cannot start or resume as asked, with the fix."""


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A sweep ready to run: the spec, its metric and direction, its points."""

    spec: SweepSpec
    metric: str
    mode: str
    points: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """What ``sweep.json`` holds."""
        return {
            "spec": self.spec.as_dict(),
            "metric": self.metric,
            "mode": self.mode,
            "points": self.points,
        }


def plan(spec: SweepSpec) -> SweepPlan:
    """The spec's points, and its metric and mode (the command's headline metric by default).

    ``train``: the task's metric and direction (``T_`` up for the copy curriculum, ``mse``
    down for adding, ...); ``rl``: the mean return, up; ``lm``: validation BPC, down.
    """
    points = spec.points()
    if spec.metric is None:
        defaults = {default_metric(spec, point) for point in points} or {default_metric(spec)}
        if len(defaults) > 1:
            raise SpecError(
                "the points run tasks with different headline metrics ("
                + ", ".join(sorted(f"{m} ({d})" for m, d in defaults))
                + "); name the one to rank with --metric (and --mode)."
            )
        metric, mode = defaults.pop()
    else:
        metric, mode = spec.metric, default_metric(spec)[1]
    return SweepPlan(spec, metric, spec.mode or mode, points)


def default_metric(spec: SweepSpec, point: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The command's headline metric and its direction for this spec (at this point)."""
    if spec.command == "rl":
        return "return", "max"
    if spec.command == "lm":
        return "valid_bpc", "min"
    from ..tasks import TASKS

    given = {**spec.args, **(point or {})}
    task = given.get("task")
    if task is None and "recipe" in given:
        from ..recipes import recipe

        with contextlib.suppress(ValueError):  # the command refuses an unknown recipe itself
            task = recipe(str(given["recipe"])).config.task
    kind = TASKS.get(str(task or "copy-curriculum"), (None, None))[0]
    if kind is None:
        return "loss", "min"  # the command refuses the task itself, with the valid ones
    return kind.metric, "max" if kind.higher_is_better else "min"


def sweep(
    spec: SweepSpec | None,
    out: str,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    concurrent: int | None = None,
    cpus_per_trial: int = 1,
    entry: str,
    check: Callable[[list[str]], None] | None = None,
    on_event: Callable[[str, int, dict], None] | None = None,
) -> dict:
    """Run every trial of a sweep (or the rest of one) and return its results.

    Args:
        spec: the sweep; None with ``resume`` takes the one saved in ``out``.
        out: the sweep's directory (every node of a cluster must see it at this path).
        address: a Ray cluster's address (``"host:6379"``, ``"auto"``); None: a new local
            Ray instance on this machine.
        resume: go on with the sweep saved in ``out``: finished trials are not rerun, and a
            trial that was running goes on from its run's last checkpoint.
        overwrite: start afresh in an ``out`` that holds another sweep (deletes it).
        concurrent: trials at once (None: as many as the local cores allow for
            ``cpus_per_trial``; on a cluster, as many as it has CPUs for).
        cpus_per_trial: CPUs Ray reserves for each trial (1: one XLA thread each).
        check: called with every trial's command line before anything starts; raises
            ``ValueError`` for one the command would refuse (``rtrlx sweep`` passes the
            command line's own checks).
        entry: the command line's entry point that runs a trial's command, ``argv ->
            exit code``, as ``"module:function"``: ``"rtrlx.cli:main"`` (the library does
            not import the command line itself).
        on_event: progress: ``on_event(kind, index, metrics)`` with kind ``"result"``,
            ``"done"`` or ``"failed"``.

    Returns:
        The results (:func:`rtrlx.sweep.report.collect`), also written to ``out``.

    Raises:
        SweepError: ``out`` holds another sweep, or the resume request does not match it.
        ValueError: a trial's command line that ``check`` refuses.
        ImportError: Ray is not installed (names the ``rtrlx[sweep]`` extra).
    """
    from .report import collect, write

    tune = require("ray.tune", "rtrlx sweep")
    if address is None and cpus_per_trial > local_cpus():
        raise SweepError(
            f"--cpus-per-trial {cpus_per_trial}: this machine has {local_cpus()} CPUs, so no "
            f"trial could start; use at most {local_cpus()}."
        )
    with locked(out):
        the_plan = _resolve(spec, out, resume=resume, overwrite=overwrite)
        if check is not None:
            for i, point in enumerate(the_plan.points):
                check(trial_argv(the_plan.spec, point, trial_dir(out, i)))
        if not resume:  # a new sweep: nothing of an overwritten one is mixed in
            for name in (TUNE_DIR, "runs"):
                shutil.rmtree(os.path.join(out, name), ignore_errors=True)
            write_json(os.path.join(out, SWEEP_FILE), the_plan.as_dict())
        tic = time.perf_counter()
        with _ray(address, cpus_per_trial) as cpus:
            if concurrent is None and address is None:
                concurrent = max(1, cpus // cpus_per_trial)
            grid = _tune(tune, the_plan, out, concurrent, cpus_per_trial, entry, on_event)
            results = grid.fit()
        # a restored experiment's errored trial has no config: its directory names it
        errors = {_index(r.path): r.error for r in results if r.error is not None}
        report = collect(
            the_plan,
            out,
            errors,
            seconds=time.perf_counter() - tic,
            concurrent=concurrent,
            resumed=resume,
        )
        write(report, out)
        return report


def _resolve(spec: SweepSpec | None, out: str, *, resume: bool, overwrite: bool) -> SweepPlan:
    """The plan to run: the saved one when resuming, else the spec's (``out`` checked)."""
    saved = None
    if os.path.exists(os.path.join(out, SWEEP_FILE)):
        with open(os.path.join(out, SWEEP_FILE)) as f:
            saved = json.load(f)
    if resume:
        if saved is None:
            raise SweepError(f"--resume: no sweep in {out}; start it without --resume.")
        stored = from_dict(saved["spec"])
        if spec is not None and spec != stored:
            diff = [k for k in saved["spec"] if getattr(spec, k) != getattr(stored, k)]
            raise SweepError(
                f"--resume: the sweep in {out} was started with another spec (it differs in "
                f"{', '.join(diff)}); resume with the same spec (or none), or use another --out."
            )
        return plan(stored)
    if saved is not None and not overwrite:
        raise SweepError(
            f"{out} already holds a sweep: continue it with --resume, or use another --out "
            "(--overwrite deletes it)."
        )
    if spec is None:
        raise SweepError("no spec: give a spec file or --command with axes.")
    return plan(spec)


@contextlib.contextmanager
def _ray(address: str | None, cpus_per_trial: int) -> Iterator[int]:
    """Connect to Ray (a new local instance when ``address`` is None); yield its CPUs."""
    import ray

    flags = os.environ.get("XLA_FLAGS", "")
    env = {"OMP_NUM_THREADS": str(cpus_per_trial)}
    if cpus_per_trial == 1:
        env["XLA_FLAGS"] = f"{flags} {ONE_THREAD}".strip()
    options: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "include_dashboard": False,
        "runtime_env": {"env_vars": env},
    }
    if address is None:
        options.update(address="local", num_cpus=local_cpus())
    else:
        options["address"] = address
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own console output stays off
    logging.getLogger("ray").setLevel(logging.ERROR)
    # A trial's failure is reported by the sweep with the command's own message; Tune's
    # traceback of it stays in the trial's error file under OUT/tune.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():  # Ray forks its daemons; JAX warns about any fork
            warnings.filterwarnings("ignore", message="os.fork")
            ray.init(**options)
    except ConnectionError as exc:
        raise SweepError(
            f"cannot reach the Ray cluster at {address}: {exc}. Start one with `ray start "
            "--head`, or leave out --address to run on this machine. A cluster with token "
            "authentication needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN here too."
        ) from exc
    try:
        yield int(ray.cluster_resources().get("CPU", 1))
    finally:
        ray.shutdown()


def _tune(
    tune: Any,
    the_plan: SweepPlan,
    out: str,
    concurrent: int | None,
    cpus_per_trial: int,
    entry: str,
    on_event: Callable[[str, int, dict], None] | None,
) -> Any:
    """The Tuner: a new one, or the one saved in ``out`` (finished trials stay finished)."""
    from ray.tune.schedulers import ASHAScheduler

    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable, plan=the_plan.as_dict(), out=os.path.abspath(out), entry=entry
        ),
        {"cpu": cpus_per_trial},
    )
    storage = os.path.join(os.path.abspath(out), TUNE_DIR)
    callbacks = []
    if on_event is not None:
        from ._progress import LISTENERS, Progress

        LISTENERS[os.path.abspath(out)] = on_event  # also what a restored callback finds
        callbacks.append(Progress(os.path.abspath(out)))
    if tune.Tuner.can_restore(storage):
        return tune.Tuner.restore(
            storage, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    scheduler = None
    asha = the_plan.spec.asha
    if asha is not None:
        scheduler = ASHAScheduler(
            time_attr="step",
            max_t=int(asha.get("max", the_plan.spec.args.get("steps", 0))),
            grace_period=int(asha.get("grace", 1)),
            reduction_factor=float(asha.get("reduction", 3)),
        )
    return tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(the_plan.points))))},
        tune_config=tune.TuneConfig(
            metric=the_plan.metric,
            mode=the_plan.mode,
            scheduler=scheduler,
            max_concurrent_trials=concurrent,
            trial_dirname_creator=lambda trial: f"trial_{trial.config['index']:03d}",
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=os.path.abspath(out),
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def _index(path: str) -> int:
    """The point index of a Tune trial directory (``trial_007``)."""
    return int(os.path.basename(path.rstrip("/")).split("_")[1])


def _trainable(config: dict, *, plan: dict, out: str, entry: str) -> None:
    """One Tune trial: the point ``config["index"]`` of the plan, run by :func:`run_trial`."""
    from ray import tune

    spec = from_dict(plan["spec"])
    index = config["index"]
    run_trial(
        plan["points"][index],
        trial_dir(out, index),
        spec,
        plan["metric"],
        entry=entry,
        report=tune.report,
    )


__all__ = ["SweepError", "SweepPlan", "TrialError", "default_metric", "plan", "sweep"]
