"""Hand a training run to a fresh machine without its learner state.

A checkpoint of an online learner is mostly the learner's state: OK(16) on the copy
curriculum (RHN n = 128, batch 16) keeps 34 MB of Kronecker traces beside 0.4 MB of
parameters and optimizer state. A run that must outlive the machine it runs on (a session
whose files are not kept, a preemptible job) can instead be carried as a small directory:
:func:`export_run` writes the run's config, its metrics and a compressed checkpoint in which
every stream's learner state has been restarted, as it is when a stream starts a new
episode; :func:`import_run` sets up a run directory from it, and the run goes on with
``rtrlx train ... --resume``.

The continuation is not the uninterrupted run: at the step of the hand-over each stream's
hidden state and traces start again from the cell's initial state (the learner's PRNG keys
keep running, so no draw is repeated). The parameters, the optimizer, the task's streams,
the curriculum and the data are carried exactly. The learner's gradients stay what they
are after any reset of a stream, so an unbiased learner stays unbiased; the cost is that the
episodes in flight at the hand-over are learned from as if they had started there. Each
hand-over's step is listed in the run's ``carried.json``.
"""

import contextlib
import gzip
import json
import os
import shutil
from typing import Any

from .driver import (
    CHECKPOINT,
    CONFIG,
    RunError,
    load_checkpoint,
    locked,
    read_records,
    write_checkpoint,
)
from .train import TrainConfig, build, restart_learner_state

#: The compressed checkpoint in a hand-over directory.
PACKED = CHECKPOINT + ".gz"
#: Where a run lists the steps at which its learner state was restarted by a hand-over.
CARRIED = "carried.json"
METRICS = "metrics.jsonl"
RESULT = "result.json"
#: The files of a run directory that a hand-over carries (besides the checkpoint).
CARRIED_FILES = (CONFIG, METRICS, RESULT, CARRIED)


def export_run(out: str, dest: str, *, backwards: bool = False) -> int:
    """Write the run checkpointed in ``out`` to ``dest``, its learner state restarted.

    Each file is written whole and moved into place: the metrics and config first, then
    the compressed checkpoint, then the summary and ``carried.json``, so an export cut short
    leaves a readable checkpoint whose step is never behind the summary beside it. The run
    is held (its lock) while it is read, so a run still going is refused, not torn.

    Args:
        out: a run directory of :func:`rtrlx.train.train` holding a checkpoint.
        dest: the hand-over directory (created; an earlier hand-over there is replaced):
            ``config.json``, ``metrics.jsonl`` (the records up to the checkpoint),
            ``checkpoint.eqx.gz``, ``carried.json``, and ``result.json`` when the run's
            summary is of the checkpoint's step.
        backwards: replace a hand-over in ``dest`` that is further along than ``out``
            (refused by default: that would lose its steps).

    Returns:
        The checkpoint's step.

    Raises:
        RunError: ``out`` holds no checkpoint of a training run (or one that does not fit
            its config), a run holds ``out``'s lock, ``dest`` is ``out``, ``dest`` holds a
            hand-over further along (without ``backwards``), or ``dest`` is not writable.
        ValueError: ``out``'s config names a task, cell or learner this rtrlx lacks.

    Examples:
        >>> import tempfile, os
        >>> from rtrlx.train import TrainConfig, train
        >>> from rtrlx.handover import export_run, import_run
        >>> work = tempfile.mkdtemp()
        >>> config = TrainConfig(task="adding", cell="gru", learner="snap:1", hidden=4,
        ...                      steps=100, batch=2, chunk=50, task_params={"length": 10})
        >>> _ = train(config, out=os.path.join(work, "run"))
        >>> export_run(os.path.join(work, "run"), os.path.join(work, "kept"))
        100
        >>> import_run(os.path.join(work, "kept"), os.path.join(work, "again"))
        100
    """
    if not os.path.exists(os.path.join(out, CHECKPOINT)):
        raise RunError(f"{out} holds no checkpoint of a training run to export.")
    if os.path.isdir(dest) and os.path.samefile(out, dest):
        raise RunError(f"cannot export {out} into itself; give another directory.")
    run, template = build(_config(out))
    with locked(out):
        return _export(out, dest, run, template, backwards)


def _export(out: str, dest: str, run: Any, template: Any, backwards: bool) -> int:
    """:func:`export_run` once ``out`` is held."""
    step, carry = load_checkpoint(out, template)
    records = read_records(out) if os.path.exists(os.path.join(out, METRICS)) else []
    kept = carried_steps(dest)
    if kept and kept[-1] > step and not backwards:
        raise RunError(
            f"{dest} holds a hand-over at step {kept[-1]}, further than {out}'s checkpoint at "
            f"step {step}; replacing it would lose {kept[-1] - step} steps. Load it instead "
            f"(rtrlx.handover.import_run into an empty directory), or pass backwards=True."
        )
    carry = carry._replace(learner_state=restart_learner_state(run, carry))
    carried = carried_steps(out)
    if not carried or carried[-1] != step:
        carried.append(step)
    staging = dest.rstrip(os.sep) + ".export"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        raw = os.path.join(staging, CHECKPOINT)
        write_checkpoint(raw, step, carry)
        # mtime 0: the same run exported twice is the same file (no new blob to commit).
        with open(raw, "rb") as src, open(os.path.join(staging, PACKED), "wb") as fh:
            with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst)
        os.remove(raw)
        _write_lines(os.path.join(staging, METRICS), [r for r in records if r["step"] <= step])
        shutil.copyfile(os.path.join(out, CONFIG), os.path.join(staging, CONFIG))
        if _result_step(out) == step:  # the run's summary, when it is the checkpoint's
            shutil.copyfile(os.path.join(out, RESULT), os.path.join(staging, RESULT))
        with open(os.path.join(staging, CARRIED), "w") as fh:
            json.dump({"learner_state_restarted_at": carried}, fh)
        os.makedirs(dest, exist_ok=True)
        for name in (METRICS, CONFIG, PACKED, RESULT, CARRIED):
            if os.path.exists(os.path.join(staging, name)):
                os.replace(os.path.join(staging, name), os.path.join(dest, name))
            elif os.path.exists(os.path.join(dest, name)):  # an earlier hand-over's
                os.remove(os.path.join(dest, name))
    except OSError as exc:
        raise RunError(f"cannot write the hand-over to {dest} ({exc}).") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return step


def import_run(src: str, out: str) -> int:
    """Set up ``out`` so that ``train(config, out=out, resume=True)`` goes on from ``src``.

    Every file is staged and checked (the checkpoint against the run's config) before
    anything is moved into ``out``, the checkpoint last, and ``out``'s lock is held
    throughout: an import that fails leaves ``out`` holding none of the run's files, so it
    can be tried again.

    Args:
        src: a directory written by :func:`export_run`.
        out: the run directory to create (or an empty one).

    Returns:
        The step the run goes on from.

    Raises:
        RunError: ``src`` is not a hand-over (or its checkpoint does not fit its config),
            ``out`` already holds a run's files or is held by a run, or ``out`` is not
            writable.
        ValueError: the config names a task, cell or learner this rtrlx lacks.

    Examples:
        See :func:`export_run`.
    """
    if not all(os.path.exists(os.path.join(src, n)) for n in (PACKED, CONFIG)):
        raise RunError(
            f"{src} is not a hand-over of rtrlx.handover.export_run (no {PACKED} and {CONFIG})."
        )
    _, template = build(_config(src))
    with locked(out):
        held = [n for n in (CHECKPOINT, *CARRIED_FILES) if os.path.exists(os.path.join(out, n))]
        if held:
            raise RunError(
                f"{out} already holds a run ({', '.join(held)}); resume it with --resume, or "
                "import into another --out."
            )
        staging = os.path.join(out, ".import")
        names = [n for n in CARRIED_FILES if os.path.exists(os.path.join(src, n))]
        moved: list[str] = []
        try:
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            with gzip.open(os.path.join(src, PACKED), "rb") as fh:
                with open(os.path.join(staging, CHECKPOINT), "wb") as dst:
                    shutil.copyfileobj(fh, dst)
            step = load_checkpoint(staging, template)[0]  # it fits the config, or RunError
            for name in names:
                shutil.copyfile(os.path.join(src, name), os.path.join(staging, name))
            for name in (*names, CHECKPOINT):
                os.replace(os.path.join(staging, name), os.path.join(out, name))
                moved.append(name)
        except (OSError, RunError) as exc:
            for name in moved:  # nothing half-imported blocks the next try
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(out, name))
            if isinstance(exc, RunError):
                raise
            raise RunError(f"cannot import {src} into {out} ({exc}).") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return step


def _config(where: str) -> TrainConfig:
    try:
        with open(os.path.join(where, CONFIG)) as fh:
            return TrainConfig(**json.load(fh))
    except (OSError, ValueError, TypeError) as exc:
        raise RunError(f"{where}/{CONFIG} is not a training run's config ({exc}).") from None


def _result_step(out: str) -> int | None:
    try:
        with open(os.path.join(out, RESULT)) as fh:
            return json.load(fh).get("steps")
    except (OSError, ValueError):
        return None


def carried_steps(out: str) -> list[int]:
    """The steps at which the run in ``out`` was handed over (its ``carried.json``; [] if none).

    Args:
        out: a run directory or a hand-over directory.

    Returns:
        The steps, oldest first; the last is a hand-over directory's checkpoint step.

    Examples:
        >>> carried_steps("/nonexistent")
        []
    """
    path = os.path.join(out, CARRIED)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return list(json.load(fh)["learner_state_restarted_at"])


def _write_lines(path: str, records: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
