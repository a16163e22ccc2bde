"""The run driver: jitted chunks, checkpoints, resume, a locked run directory, metrics, result.

Every command that trains something for many steps (``rtrlx train``, ``compare``, ``rl``, and
the ones to come) describes its run as a :class:`Job` and hands it to :func:`drive`:

- ``carry``: the whole state of the run, a pytree of arrays (typed PRNG keys allowed).
- ``chunk(carry, n) -> (carry, output)``: ``n`` steps, jitted (``n`` static); ``output`` is
  whatever the chunk reports (summed losses, per-step records), never carried.
- ``record(carry, output, info) -> dict``: the chunk's metrics record (one JSONL line).
- ``result(carry, records, info) -> dict``: the run's summary (the result JSON).

The driver runs the chunks in a Python loop (nothing loops over time in Python: a chunk is
one ``lax.scan``), stops with :class:`TrainingError` naming the step range where the state
went non-finite, checkpoints atomically, saves on Ctrl-C (also while the first chunk
compiles) and returns ``interrupted=True`` (a chunk stopped that way is still computing:
:func:`abandoned_work` says so, and the command line then exits without waiting for it),
and owns the run directory:

- ``out/.lock``: one run at a time per directory (``fcntl.flock``, non-blocking).
- ``out/checkpoint.eqx``: the step and the carry; ``out/config.json``: the run's config,
  written with every checkpoint. Both, and the result JSON, are written to a temporary file
  and moved into place (``os.replace``), so a kill never leaves half a file.
- ``out/metrics.jsonl`` (or ``metrics_file``): one record per chunk. On resume the records
  after the checkpoint (written before a kill) are dropped first, so none appears twice.
- ``out/result.json`` (or ``result_file``).

Resume refuses a config that differs from the saved one in anything but ``resumable``
fields (``steps`` by default) and the ``allow_changes`` the user asked for, naming each
setting that differs. Resuming a run that is already at (or past) the requested steps is an
error that leaves every file untouched: there is nothing to do, and a result rewritten from
zero new steps would lose the run's numbers.
"""

import contextlib
import dataclasses
import errno
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import RtrlxError
from ._tree import data_to_keys, keys_to_data

CHECKPOINT = "checkpoint.eqx"
CONFIG = "config.json"
LOCK = ".lock"


class TrainingError(RtrlxError):
    """A run that cannot go on (its state stopped being finite), with where and what next."""


class RunError(RtrlxError, ValueError):
    """A run directory or a resume request that cannot be honoured, with the fix."""


class ChunkInfo(NamedTuple):
    """What the driver knows about one chunk, for the job's ``record``."""

    start: int  # the step the chunk started at
    stop: int  # the step it ended at
    seconds: float  # wall time of the chunk (includes compiling when ``compiled``)
    compiled: bool  # the first chunk of this length in this process: its time includes jit


class RunInfo(NamedTuple):
    """What the driver knows about the whole run, for the job's ``result``."""

    start_step: int  # the step this call started at (the checkpoint's when resuming)
    step: int  # the step reached
    seconds: float  # wall time of this call's chunks, compiling included
    interrupted: bool  # stopped by Ctrl-C (a checkpoint of ``step`` is saved)
    stopped: str | None = None  # why the job's ``stop`` ended the run before ``steps``


class Job(NamedTuple):
    """A run as the driver sees it; see the module docstring.

    Attributes:
        carry: the initial state (also the template a checkpoint is read into).
        chunk: ``chunk(carry, n) -> (carry, output)``, jitted with ``n`` static.
        record: ``record(carry, output, info) -> dict``: the chunk's metrics (the driver
            adds ``"step"`` first).
        result: ``result(carry, records, info) -> dict``: the run's summary; ``records`` are
            all of the run's records, those before a resume included.
        chunk_steps: steps per chunk (the last one may be shorter).
        label: what runs, for messages (``"rtrl on adding"``).
        finite: ``finite(carry, output) -> str | None``: what went non-finite (e.g.
            ``"the loss (mean nan)"``), or None. Default: every float leaf of the carry.
        restart_fix: how to avoid the divergence when restarting (``"lower --lr"``).
        resume_fix: how to continue from a checkpoint with a lower learning rate, e.g.
            ``"add --resume --allow-change lr --lr 1e-4 to the same command"`` (None: the
            run must restart).
        stop: ``stop(records) -> str | None``, asked after every chunk: a reason to end the
            run before ``steps`` (a wall-clock budget spent), or None. The run ends as at
            ``steps``: checkpointed, with its result (``RunInfo.stopped`` holds the reason).
    """

    carry: Any
    chunk: Callable[[Any, int], tuple[Any, Any]]
    record: Callable[[Any, Any, ChunkInfo], dict]
    result: Callable[[Any, list[dict], RunInfo], dict]
    chunk_steps: int
    label: str
    finite: Callable[[Any, Any], str | None] | None = None
    restart_fix: str = "lower the learning rate"
    resume_fix: str | None = None
    stop: Callable[[list[dict]], str | None] | None = None


#: Callbacks that see every chunk's record of every run driven in this process (:func:`watching`).
_WATCHERS: list[Callable[[dict, int], None]] = []


@contextlib.contextmanager
def watching(callback: Callable[[dict, int], None]) -> Iterator[None]:
    """Call ``callback`` with each chunk's record of every run this process drives meanwhile.

    A caller that runs a whole command (a sweep's trial runs ``rtrlx train ...`` in-process)
    sees its records as they come without the command passing them on; ``drive``'s own
    ``on_chunk`` is the command's (its progress bar).

    Args:
        callback: ``callback(record, steps)`` with each record (the dict ``metrics.jsonl``
            gets), after ``on_chunk``, and the step the run is to end at.

    Yields:
        None; the callback is removed on exit.

    Examples:
        >>> seen = []
        >>> job = Job(jnp.zeros(()), lambda c, n: (c + n, None),
        ...           lambda c, out, info: {}, lambda c, records, info: {}, 5, "counting")
        >>> with watching(lambda record, steps: seen.append((record["step"], steps))):
        ...     _ = drive({}, lambda: job, steps=10)
        >>> seen
        [(5, 10), (10, 10)]
    """
    _WATCHERS.append(callback)
    try:
        yield
    finally:
        _WATCHERS.remove(callback)


def drive(
    config: Any,
    make_job: Callable[[], Job],
    *,
    steps: int,
    out: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    resumable: Collection[str] = ("steps",),
    allow_changes: Collection[str] = (),
    checkpoint_every: int = 0,
    on_chunk: Callable[[dict], None] | None = None,
    metrics_file: str = "metrics.jsonl",
    result_file: str = "result.json",
) -> dict:
    """Run a job to ``steps`` steps; return its result.

    Args:
        config: the run's configuration, a dataclass (saved as ``config.json``).
        make_job: builds the :class:`Job`; called once ``out`` is checked and locked, so a
            bad ``--out`` is reported before anything is built or compiled.
        steps: the total steps of the run (in the job's unit).
        out: the run directory (None: keep nothing on disk).
        resume: continue the run checkpointed in ``out``.
        overwrite: start afresh in an ``out`` that holds another run, deleting its files.
        resumable: config fields that may differ from the saved config on resume.
        allow_changes: further fields the user asked to change on resume (e.g. ``"lr"``;
            ``"agent_params.lr"`` for a key of a dict field).
        checkpoint_every: steps between checkpoints (0: only at the end and on Ctrl-C).
        on_chunk: called with each chunk's record (progress bars).
        metrics_file: name of the JSONL file of records in ``out``.
        result_file: name of the result JSON in ``out``.

    Returns:
        The job's ``result``; the same dict is written to ``out/result_file``.

    Raises:
        TrainingError: the state went non-finite; says which checkpoint of this run exists
            and how to go on from it.
        RunError: ``out`` is unusable or in use, or the resume request cannot be honoured.

    Examples:
        >>> import jax.numpy as jnp
        >>> job = Job(
        ...     carry=jnp.zeros(()),
        ...     chunk=lambda c, n: (c + n, None),
        ...     record=lambda c, out, info: {"value": float(c)},
        ...     result=lambda c, records, info: {"value": float(c), "steps": info.step},
        ...     chunk_steps=4,
        ...     label="counting",
        ... )
        >>> drive({"what": "counting"}, lambda: job, steps=10)
        {'value': 10.0, 'steps': 10}
    """
    if out is None:
        if resume:
            raise RunError("resume needs the run directory (--out) that holds the checkpoint.")
        return _loop(_Session(config, make_job(), None, 0, [], None, steps), on_chunk)
    _check_out(out)
    with _locked(out):
        session = _open(
            config,
            make_job,
            out,
            steps=steps,
            resume=resume,
            overwrite=overwrite,
            free=set(resumable) | set(allow_changes),
            files=(metrics_file, result_file),
        )
        session.checkpoint_every = checkpoint_every
        result = _loop(session, on_chunk)
        write_json(os.path.join(out, result_file), result)
        return result


@dataclasses.dataclass
class _Session:
    """One call of :func:`drive`: the job and where it stands."""

    config: Any
    job: Job
    out: str | None
    step: int
    records: list[dict]
    metrics_path: str | None
    steps: int
    checkpoint_every: int = 0
    last_checkpoint: int | None = None  # the step of a checkpoint of this run on disk


def _open(
    config: Any,
    make_job: Callable[[], Job],
    out: str,
    *,
    steps: int,
    resume: bool,
    overwrite: bool,
    free: set[str],
    files: tuple[str, str],
) -> _Session:
    """Check the run directory against the request and build the session."""
    checkpoint = os.path.join(out, CHECKPOINT)
    metrics_path = os.path.join(out, files[0])
    if resume and overwrite:
        raise RunError(
            f"--resume goes on with the run in {out} and --overwrite replaces it; give one of "
            "them."
        )
    if not resume:
        if os.path.exists(checkpoint) and not overwrite:
            raise RunError(
                f"{out} already holds a run (checkpoint at step {saved_step(out)}): continue "
                f"it with --resume, or use another --out (--overwrite replaces it)."
            )
        for name in (CHECKPOINT, CONFIG, *files):  # nothing of another run is mixed in
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))
        _write_atomic(os.path.join(out, CONFIG), _config_json(config))
        return _Session(config, make_job(), out, 0, [], metrics_path, steps)
    if not os.path.exists(checkpoint):
        raise RunError(f"--resume: no checkpoint in {out}; start the run without --resume.")
    _refuse_changes(out, config, free)
    at = saved_step(out)
    if steps <= at:
        raise RunError(
            f"the run in {out} is already at step {at}; --steps {steps} asks for nothing more, "
            f"so nothing was run and its files are untouched. To go on, resume with --steps "
            f"above {at}."
        )
    job = make_job()
    carry = load_checkpoint(out, job.carry)[1]
    records = _truncate_metrics(metrics_path, at)
    session = _Session(config, job._replace(carry=carry), out, at, records, metrics_path, steps)
    session.last_checkpoint = at
    return session


_ABANDONED = threading.Event()  # set when Ctrl-C or SIGTERM stopped a chunk mid-computation


def abandoned_work() -> bool:
    """Whether a Ctrl-C or SIGTERM stopped a run while a chunk was still computing.

    Such a chunk cannot be cancelled: it runs on in XLA's threads, and the interpreter's exit
    waits for it (many minutes for a long chunk), though its run is saved. The ``rtrlx``
    command therefore exits at once when this is true.

    Returns:
        True once any run in this process was stopped mid-chunk.
    """
    return _ABANDONED.is_set()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill PID``) ends the run as Ctrl-C does: a checkpoint, then the result.

    A run started in the background by a non-interactive shell ignores SIGINT, so ``kill
    -TERM`` is how such a run is stopped; without this it would die at once and lose the
    steps since its last checkpoint. Signal handlers belong to the main thread: elsewhere
    (a Ray worker's thread, say) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _loop(s: _Session, on_chunk: Callable[[dict], None] | None) -> dict:
    """The chunks, with the finiteness check, checkpoints and Ctrl-C."""
    job, carry, start = s.job, s.job.carry, s.step
    seen: set[int] = set()
    interrupted, stopped, computing = False, None, False
    tic_run = time.perf_counter()
    with _terminate_as_interrupt():
        try:
            while s.step < s.steps:
                n = min(job.chunk_steps, s.steps - s.step)
                tic = time.perf_counter()
                computing = True
                new, output = job.chunk(carry, n)
                jax.block_until_ready((new, output))
                computing = False
                info = ChunkInfo(s.step, s.step + n, time.perf_counter() - tic, n not in seen)
                seen.add(n)
                bad = (job.finite or _all_finite)(new, output)
                if bad is not None:
                    raise TrainingError(_diverged(s, info, bad))
                record = {"step": info.stop, **job.record(new, output, info)}
                # The run's wall-clock so far, across resumes (a job may keep its own).
                before = s.records[-1].get("wall_seconds", 0.0) if s.records else 0.0
                record.setdefault("wall_seconds", before + info.seconds)
                if s.metrics_path:
                    _append(s.metrics_path, record)
                carry, s.step = new, info.stop
                s.records.append(record)
                if on_chunk:
                    on_chunk(record)
                for watcher in tuple(_WATCHERS):
                    watcher(record, s.steps)
                stopped = job.stop(s.records) if job.stop else None
                if stopped:
                    break
                since = s.step - (start if s.last_checkpoint is None else s.last_checkpoint)
                due = s.checkpoint_every and since >= s.checkpoint_every
                if s.out and due and s.step < s.steps:  # the last one is saved below
                    _save(s, carry)
        except KeyboardInterrupt:
            interrupted = True
            if computing:
                _ABANDONED.set()
    if s.out:
        _save(s, carry)
    seconds = time.perf_counter() - tic_run
    return job.result(carry, s.records, RunInfo(start, s.step, seconds, interrupted, stopped))


def _all_finite(carry: Any, output: Any) -> str | None:
    leaves = [a for a in jax.tree.leaves(carry) if eqx.is_inexact_array(a)]
    if all(bool(jnp.all(jnp.isfinite(a))) for a in leaves):
        return None
    return "the state"


def _diverged(s: _Session, info: ChunkInfo, what: str) -> str:
    """The divergence message: where, what exists on disk, and the command to go on."""
    head = f"{s.job.label}: {what} became non-finite between steps {info.start} and {info.stop}."
    if s.out is None:
        return f"{head} Nothing was saved (no output directory); restart: {s.job.restart_fix}."
    if s.last_checkpoint is None:
        due = f"every {s.checkpoint_every} steps" if s.checkpoint_every else "off"
        return (
            f"{head} This run wrote no checkpoint before it (checkpoints: {due}), so it must "
            f"restart: {s.job.restart_fix}."
        )
    where = f"{head} The last checkpoint of this run is step {s.last_checkpoint} in {s.out}"
    if s.job.resume_fix is None:
        return f"{where}; restart with: {s.job.restart_fix}."
    return f"{where}; continue from it with a lower learning rate: {s.job.resume_fix}."


def load_checkpoint(out: str, like: Any) -> tuple[int, Any]:
    """The step and carry saved in ``out/checkpoint.eqx``, read into the structure of ``like``.

    Raises:
        RunError: the file does not fit ``like`` (written by another version of rtrlx, or
            for another run).
    """
    template = (np.zeros((), np.int64), keys_to_data(like))
    try:
        step, data = eqx.tree_deserialise_leaves(os.path.join(out, CHECKPOINT), template)
    except Exception as exc:  # eqx raises several types for a file that does not fit
        raise RunError(
            f"cannot read the checkpoint in {out} ({type(exc).__name__}: {exc}); it was "
            f"written for another run or by another rtrlx version: start afresh with another "
            f"--out."
        ) from None
    return int(step), data_to_keys(data, like)


def saved_step(out: str) -> int:
    """The step of the checkpoint in ``out``, read without knowing the carry's structure.

    Args:
        out: a run directory holding ``checkpoint.eqx``.

    Returns:
        The step the checkpoint was taken at.

    Raises:
        RunError: the checkpoint cannot be read, or was written in another layout.

    Examples:
        >>> import tempfile, jax.numpy as jnp
        >>> out = tempfile.mkdtemp()
        >>> write_checkpoint(out + "/checkpoint.eqx", 7, {"x": jnp.zeros(2)})
        >>> saved_step(out)
        7
    """
    path = os.path.join(out, CHECKPOINT)
    try:
        with open(path, "rb") as fh:
            step = np.load(fh)
        if step.shape != () or not np.issubdtype(step.dtype, np.integer):
            raise ValueError("its first entry is not the step")
    except (OSError, ValueError) as exc:
        raise RunError(
            f"cannot read the step of the checkpoint {path} ({exc}); it was written by another "
            f"rtrlx version or is damaged: start afresh with --overwrite or another --out."
        ) from None
    return int(step)


def _save(s: _Session, carry: Any) -> None:
    """Checkpoint and config, each written whole or not at all."""
    assert s.out is not None
    path = os.path.join(s.out, CHECKPOINT)
    try:
        write_checkpoint(path, s.step, carry)
    except OSError as exc:
        raise RunError(_cannot_write(path, exc, s.last_checkpoint)) from None
    _write_atomic(os.path.join(s.out, CONFIG), _config_json(s.config))
    s.last_checkpoint = s.step


def write_checkpoint(path: str, step: int, carry: Any) -> None:
    """Write ``(step, carry)`` in the checkpoint format, whole or not at all.

    Args:
        path: the file (written as ``path.tmp``, then moved into place).
        step: the step the carry is at.
        carry: the run's carry (typed PRNG keys allowed).

    Raises:
        OSError: the file cannot be written (nothing is left at ``path``'s temporary name).
    """
    tmp = path + ".tmp"
    try:
        eqx.tree_serialise_leaves(tmp, (np.asarray(step, np.int64), keys_to_data(carry)))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)  # only there when the write or the move failed


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunError(_cannot_write(path, exc, None)) from None


def write_json(path: str, obj: Any) -> None:
    """``obj`` as JSON at ``path``, written whole or not at all (temporary file, replace).

    Raises:
        RunError: the file cannot be written (a full disk, no permission).
    """
    _write_atomic(path, json.dumps(obj, indent=2, default=str))


def _append(path: str, record: dict) -> None:
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    except OSError as exc:
        raise RunError(_cannot_write(path, exc, None)) from None


def _cannot_write(path: str, exc: OSError, checkpoint: int | None) -> str:
    kept = "" if checkpoint is None else f" The checkpoint of step {checkpoint} is kept."
    fix = "free some space" if exc.errno == errno.ENOSPC else "check the permissions"
    return f"cannot write {path}: {exc.strerror}; {fix}, or use another --out.{kept}"


def _truncate_metrics(path: str, step: int) -> list[dict]:
    """The records up to ``step``; the file rewritten to hold only those."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        lines = [line for line in fh if line.strip()]
    kept = [r for r in map(_parse, lines) if r is not None and r.get("step", 0) <= step]
    if len(kept) < len(lines):
        _write_atomic(path, "".join(json.dumps(r, default=str) + "\n" for r in kept))
    return kept


def _parse(line: str) -> dict | None:
    """A JSONL record, or None for a line torn by a kill in the middle of its write."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _config_json(config: Any) -> str:
    return json.dumps(_as_dict(config), indent=2)


def _as_dict(config: Any) -> dict:
    if isinstance(config, dict):
        raw = dict(config)
    else:
        raw = dataclasses.asdict(config)
    return json.loads(json.dumps(raw))  # tuples become lists, as they come back from disk


def config_changes(saved: dict, config: Any) -> dict[str, tuple[Any, Any]]:
    """``{setting: (saved, now)}`` for each setting of ``config`` that differs from ``saved``.

    A dict-valued field is compared key by key (``"agent_params.lr"``). A setting that
    ``saved`` lacks (a run started before rtrlx had it) counts as its default: the run
    computed what the default computes. (A new setting's default must therefore be what
    rtrlx did before it existed, and stay so.)
    """
    now = _as_dict(config)
    defaults = _defaults(config)
    differ: dict[str, tuple[Any, Any]] = {}
    for name in sorted(set(saved) | set(now)):
        a, b = saved.get(name, defaults.get(name)), now.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    differ[f"{name}.{key}"] = (a.get(key), b.get(key))
        elif a != b:
            differ[name] = (a, b)
    return differ


def _defaults(config: Any) -> dict[str, Any]:
    """The defaults of a dataclass ``config``'s fields (none for another kind of config)."""
    if not dataclasses.is_dataclass(config):
        return {}
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return _as_dict(out)


def _refuse_changes(out: str, config: Any, free: set[str]) -> None:
    with open(os.path.join(out, CONFIG)) as fh:
        saved = json.load(fh)
    differ = {k: v for k, v in config_changes(saved, config).items() if k not in free}
    if differ:
        free_text = ", ".join(sorted(free)) or "nothing"
        raise RunError(
            f"cannot resume from {out}: its run was configured differently ("
            + ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            + f"). Use the same settings (only {free_text} may change), or another --out."
        )


def _check_out(out: str) -> None:
    """Refuse an ``out`` that is a file, cannot be made, or cannot be written to."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--out {out} is a file, not a directory; give a directory.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise RunError(
            f"cannot create the output directory {out}: {exc.strerror}; give a writable --out."
        ) from None
    probe = os.path.join(out, f".probe-{os.getpid()}")
    try:
        with open(probe, "wb") as fh:  # a few KiB, flushed: a full disk fails here
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        what = "full" if exc.errno == errno.ENOSPC else "not writable"
        raise RunError(
            f"the output directory {out} is {what} ({exc.strerror}); give another --out."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)


@contextlib.contextmanager
def _locked(out: str) -> Iterator[None]:
    """Hold ``out/.lock`` (non-blocking): a second run in ``out`` gets a clear error."""
    import fcntl  # POSIX only: imported here so that `import rtrlx` works everywhere

    fh = open(os.path.join(out, LOCK), "a")  # held for the whole run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise RunError(
            f"{out} is in use: another run holds its lock ({os.path.join(out, LOCK)}). Wait "
            f"for that run to finish, or use another --out."
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


@contextlib.contextmanager
def locked(out: str) -> Iterator[None]:
    """Check ``out`` and hold its lock (for commands that own a directory of runs).

    Raises:
        RunError: ``out`` is a file, unwritable, or another run holds it.
    """
    _check_out(out)
    with _locked(out):
        yield


def read_records(out: str, metrics_file: str = "metrics.jsonl") -> list[dict]:
    """The records of ``out/metrics_file`` (a line torn by a kill, or being written, skipped)."""
    with open(os.path.join(out, metrics_file)) as fh:
        return [r for line in fh if line.strip() and (r := _parse(line)) is not None]
