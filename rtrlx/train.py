"""Online training: parameters updated as the streams flow, with checkpoints and resume.

``train(TrainConfig(...))`` runs one learner on one task. The loop is a Python loop over
*chunks* of steps (for the progress bar, checkpoints and Ctrl-C); each chunk is one jitted
``lax.scan`` over its steps, in which every step generates the batch's inputs, advances the
learner, and (every ``update_every`` steps) applies the optax update. Nothing in a chunk
loops over time in Python.
"""

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ._errors import RtrlxError, UnsupportedCellError
from .cells import CELLS
from .learners import make as make_learner
from .learners._registry import valid_names
from .tasks import TASKS
from .tasks import make as make_task

OPTIMIZERS = ("adam", "sgd")


class TrainingError(RtrlxError):
    """A training run that cannot go on (a non-finite loss), with where and why."""


@dataclass(frozen=True)
class TrainConfig:
    """One online training run: the library's and the command line's configuration.

    Attributes:
        task: task name (``rtrlx.tasks.TASKS``).
        cell: cell name (``rtrlx.cells.CELLS``), or ``deep-lru`` / ``deep-rtu`` for a
            :class:`rtrlx.models.DeepRecurrent` stack of ``layers`` blocks (``hidden`` is
            its ``d_model``).
        learner: learner name (``rtrlx.learners.make``), e.g. ``"ok:4"``.
        hidden: units in the cell.
        layers: blocks of a ``deep-*`` stack (1 for every other cell).
        steps: time steps per stream.
        lr: learning rate.
        batch: independent streams.
        seed: seed of parameters, data and the learner's noise.
        update_every: steps between parameter updates (1: fully online). The gradients of
            the steps in between are summed.
        optimizer: ``"adam"`` or ``"sgd"``.
        chunk: steps per jitted call (the granularity of progress and checkpoints).
        checkpoint_every: steps between checkpoints (rounded up to whole chunks; 0: none).
        eval_every: steps between held-out evaluations (0: only at the end).
        task_params: overrides of the task's parameters.
    """

    task: str = "copy-curriculum"
    cell: str = "rhn"
    learner: str = "rtrl"
    hidden: int = 32
    layers: int = 1
    steps: int = 10_000
    lr: float = 10**-3.5
    batch: int = 16
    seed: int = 0
    update_every: int = 1
    optimizer: str = "adam"
    chunk: int = 250
    checkpoint_every: int = 5_000
    eval_every: int = 0
    task_params: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field and the valid choices."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASKS)}.")
        if self.cell not in CELLS and self.cell not in DEEP_CELLS:
            raise ValueError(
                f"unknown cell {self.cell!r}; valid cells: {', '.join([*CELLS, *DEEP_CELLS])}."
            )
        if self.layers != 1 and self.cell not in DEEP_CELLS:
            raise ValueError(
                f"layers={self.layers} needs a stack: use --cell deep-lru or deep-rtu (the "
                f"cell {self.cell!r} is a single layer)."
            )
        learner = make_learner(self.learner)  # raises with the valid names
        if not learner.online:
            raise ValueError(
                f"learner {self.learner!r} cannot train online (it needs the whole sequence); "
                f"use one of: {valid_names()} other than bptt, e.g. tbptt:20."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}."
            )
        for name in ("hidden", "layers", "steps", "batch", "update_every", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        task, params = make_task(self.task, **self.task_params)
        if getattr(task, "model", None) is None:
            cell = make_cell(
                self.cell, task.input_size, self.hidden, self.layers, jax.random.key(0)
            )
            try:
                jax.eval_shape(lambda: learner.init(cell, batch_size=self.batch))
            except UnsupportedCellError as err:
                raise ValueError(str(err)) from None
        period = task.reset_period(params)
        k = _tbptt_k(self.learner)
        if period is not None and k is not None and period % k:
            raise ValueError(
                f"{self.learner}: the task resets every stream every {period} steps, which "
                f"must be a multiple of the truncation {k} (a reset inside a window would cut "
                f"it wrongly); pick k dividing {period}."
            )


#: Stacks that ``--cell`` can name: :class:`rtrlx.models.DeepRecurrent` of LRU or RTU blocks.
DEEP_CELLS = ("deep-lru", "deep-rtu")


def make_cell(name: str, input_size: int, hidden: int, layers: int, key: Any) -> Any:
    """A cell by its command-line name; ``deep-*`` names build a DeepRecurrent stack."""
    if name in DEEP_CELLS:
        from .models import DeepRecurrent

        return DeepRecurrent(input_size, hidden, layers=layers, cell=name[5:], key=key)
    cell_cls: Any = CELLS[name]
    return cell_cls(input_size, hidden, key=key)


def _float() -> Any:
    """The default float dtype (float64 when x64 is enabled)."""
    return jnp.zeros(()).dtype


def _tbptt_k(spec: str) -> int | None:
    name, _, arg = spec.partition(":")
    return int(arg) if name == "tbptt" and arg else None


class Carry(NamedTuple):
    """Everything the loop carries from step to step (all arrays: checkpointable)."""

    params: Any  # (cell, head) parameters
    opt_state: Any
    learner_state: Any
    task_state: Any
    level: jax.Array  # the curriculum's level
    running: jax.Array  # running average of the task's step statistics
    accum: Any  # gradients summed since the last update
    step: jax.Array  # steps taken, int32
    key: jax.Array  # raw key data (uint32), for serialisation
    totals: jax.Array  # task statistics summed over the current chunk
    loss: jax.Array  # training loss summed over the current chunk


@dataclass
class Run:
    """The static pieces of a run, rebuilt from its config."""

    config: TrainConfig
    task: Any
    task_params: Any
    learner: Any
    static: Any
    optimizer: Any
    period: int | None

    def modules(self, params: Any) -> tuple[Any, Any]:
        """The ``(cell, head)`` modules with ``params``."""
        return eqx.combine(params, self.static)


def build(config: TrainConfig) -> tuple[Run, Carry]:
    """The run's static pieces and its initial carry."""
    config.validate()
    task, task_params = make_task(config.task, **config.task_params)
    learner = make_learner(config.learner)
    key = jax.random.key(config.seed)
    k_cell, k_head, k_task, k_learn, k_loop = jax.random.split(key, 5)
    model = getattr(task, "model", None)
    if model is not None:  # a task with its own fixed model (influence balancing)
        cell, head = model(task_params)
    else:
        cell = make_cell(config.cell, task.input_size, config.hidden, config.layers, k_cell)
        head = eqx.nn.Linear(cell.output_size, task.output_size, key=k_head)
    params, static = eqx.partition((cell, head), eqx.is_inexact_array)
    if config.optimizer == "adam":
        optimizer = optax.adam(config.lr)
    else:
        optimizer = optax.sgd(config.lr)
    run = Run(
        config, task, task_params, learner, static, optimizer, task.reset_period(task_params)
    )
    task_state = jax.vmap(task.init, in_axes=(None, 0))(
        task_params, jax.random.split(k_task, config.batch)
    )
    learner_state = learner.init(cell, key=k_learn, batch_size=config.batch)
    level = jnp.asarray(task.init_level(task_params), _float())
    example_y = jax.eval_shape(
        lambda: task.step(task_params, level, jax.tree.map(lambda a: a[0], task_state), k_task)
    )[2]
    stats_shape = jax.eval_shape(
        task.stats, jax.ShapeDtypeStruct((task.output_size,), _float()), example_y
    )
    running = task.init_running(task_params)
    running = jnp.zeros(stats_shape.shape) if running is None else jnp.asarray(running)
    carry = Carry(
        params=params,
        opt_state=_standard(optimizer.init, params),
        learner_state=_keys_to_data(learner_state),
        task_state=task_state,
        level=level,
        running=running.astype(_float()),
        accum=jax.tree.map(jnp.zeros_like, params),
        step=jnp.zeros((), jnp.int32),
        key=jax.random.key_data(k_loop),
        totals=jnp.zeros(stats_shape.shape, _float()),
        loss=jnp.zeros((), _float()),
    )
    return run, carry


def _standard(fn: Callable, *args: Any) -> Any:
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args)


def _is_key(a: Any) -> bool:
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)


def _data_to_keys(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda a, b: jax.random.wrap_key_data(a) if _is_key(b) else a, tree, like)


def _chunk_fn(run: Run, key_like: Any) -> Callable[[Carry, int], Carry]:
    config, task, tparams, learner = run.config, run.task, run.task_params, run.learner
    smoothing = float(getattr(tparams, "smoothing", 0.01))

    def one_step(carry: Carry, _: Any) -> tuple[Carry, None]:
        cell, head = run.modules(carry.params)
        key = jax.random.wrap_key_data(carry.key)
        key, k_task = jax.random.split(key)
        task_state, x, y = jax.vmap(task.step, in_axes=(None, None, 0, 0))(
            tparams, carry.level, carry.task_state, jax.random.split(k_task, config.batch)
        )
        state = _data_to_keys(carry.learner_state, key_like)
        if run.period is not None:
            fresh = learner.init(cell, batch_size=config.batch)
            if hasattr(state, "key"):
                fresh = fresh._replace(key=state.key)
            state = lax.cond(carry.step % run.period == 0, lambda: fresh, lambda: state)
        state, loss, grads = learner.step(cell, head, task.loss, state, x, y)
        out = jax.vmap(lambda h: head(cell.features(h)))(state.hidden)
        stats = jnp.sum(jax.vmap(task.stats)(out, y), axis=0).astype(_float())
        running = (1 - smoothing) * carry.running + smoothing * stats
        level, running = task.next_level(tparams, carry.level, running)
        accum = jax.tree.map(jnp.add, carry.accum, grads)

        def update(args):
            params, opt_state, accum = args
            # optax mixes Python floats with int32 step counts; let that promote even when
            # the user runs JAX with strict dtype promotion.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = run.optimizer.update(accum, opt_state, params)
            return (
                optax.apply_updates(params, updates),
                opt_state,
                jax.tree.map(jnp.zeros_like, accum),
            )

        params, opt_state, accum = lax.cond(
            (carry.step + 1) % config.update_every == 0,
            update,
            lambda args: args,
            (carry.params, carry.opt_state, accum),
        )
        return (
            Carry(
                params,
                opt_state,
                _keys_to_data(state),
                task_state,
                jnp.asarray(level, _float()),
                running.astype(_float()),
                accum,
                carry.step + 1,
                jax.random.key_data(key),
                carry.totals + stats,
                carry.loss + loss.astype(_float()),
            ),
            None,
        )

    @eqx.filter_jit
    def chunk(carry: Carry, n: int) -> Carry:
        carry = carry._replace(
            totals=jnp.zeros_like(carry.totals), loss=jnp.zeros_like(carry.loss)
        )
        carry, _ = lax.scan(one_step, carry, None, length=n)
        return carry

    return chunk


def state_megabytes(run: Run, carry: Carry) -> float:
    """Megabytes of learner state for the whole batch (constant in T for online learners)."""
    leaves = jax.tree.leaves(carry.learner_state)
    return sum(a.size * a.dtype.itemsize for a in leaves) / 2**20


def save_checkpoint(out: str, run: Run, carry: Carry) -> None:
    """Write ``out/checkpoint.eqx`` and ``out/config.json`` (atomically)."""
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "checkpoint.eqx.tmp")
    eqx.tree_serialise_leaves(tmp, carry)
    os.replace(tmp, os.path.join(out, "checkpoint.eqx"))
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(dataclasses.asdict(run.config), fh, indent=2)


def load_checkpoint(out: str, config: TrainConfig) -> tuple[Run, Carry]:
    """The run saved in ``out``, which must have been made by the same ``config``."""
    path = os.path.join(out, "config.json")
    with open(path) as fh:
        saved = json.load(fh)
    mine = dataclasses.asdict(config)
    differ = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v and k != "steps"}
    if differ:
        raise ValueError(
            f"cannot resume from {out}: its run was configured differently ("
            + ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            + "). Use the same flags (only --steps may change) or another --out."
        )
    run, template = build(config)
    carry = eqx.tree_deserialise_leaves(os.path.join(out, "checkpoint.eqx"), template)
    return run, carry


def train(
    config: TrainConfig,
    *,
    out: str | None = None,
    resume: bool = False,
    on_chunk: Callable[[dict], None] | None = None,
) -> dict:
    """Train online; return the run's summary.

    Args:
        config: the run.
        out: a directory for ``metrics.jsonl``, ``checkpoint.eqx``, ``config.json`` and
            ``result.json`` (None: keep nothing on disk).
        resume: continue the run checkpointed in ``out`` (same config but ``steps``).
        on_chunk: called with each chunk's metrics record (for progress bars).

    Returns:
        A dict: ``config``, ``metric`` (the task's headline metric name), ``value``, ``steps``,
        ``steps_per_second``, ``state_mb``, ``metrics`` (the last record), ``interrupted``.

    Raises:
        TrainingError: when the loss or the parameters stop being finite. The last good
            checkpoint (if ``out``) is kept.
        ValueError: for a bad configuration.

    Examples:
        >>> from rtrlx.train import TrainConfig, train
        >>> result = train(TrainConfig(task="adding", cell="gru", learner="snap:1",
        ...                            hidden=4, steps=100, batch=2, chunk=50,
        ...                            task_params={"length": 10}))
        >>> result["metric"], result["steps"]
        ('mse', 100)
    """
    if resume:
        if out is None or not os.path.exists(os.path.join(out, "checkpoint.eqx")):
            raise ValueError(f"--resume: no checkpoint in {out!r}; start a run without it.")
        run, carry = load_checkpoint(out, config)
    else:
        run, carry = build(config)
    key_like = run.learner.init(run.modules(carry.params)[0], batch_size=config.batch)
    chunk = _chunk_fn(run, key_like)
    task = run.task
    metrics_path = None if out is None else os.path.join(out, "metrics.jsonl")
    if out is not None:
        os.makedirs(out, exist_ok=True)
        if not resume and os.path.exists(metrics_path or ""):
            os.remove(metrics_path or "")
    record: dict = {}
    interrupted = False
    start_step = int(carry.step)
    start = time.perf_counter()
    last_checkpoint = start_step
    try:
        while int(carry.step) < config.steps:
            n = min(config.chunk, config.steps - int(carry.step))
            tic = time.perf_counter()
            new = chunk(carry, n)
            loss = float(new.loss) / n
            if not math.isfinite(loss) or not all(
                bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(new.params)
            ):
                raise TrainingError(
                    f"{config.learner} on {config.task}: the loss became non-finite between "
                    f"steps {int(carry.step)} and {int(new.step)} (mean loss {loss}). "
                    + (
                        f"The last good checkpoint (step {last_checkpoint}) is in {out}. "
                        if out
                        else ""
                    )
                    + "Lower --lr, or use --update-every > 1 to average gradients."
                )
            carry = new
            seconds = time.perf_counter() - tic
            record = {
                "step": int(carry.step),
                "loss": loss,
                "steps_per_second": n / seconds,
                **task.report(run.task_params, carry.level, carry.totals),
            }
            if config.eval_every and int(carry.step) % config.eval_every < n:
                record.update(task.evaluate(run.task_params, *run.modules(carry.params)))
            if metrics_path:
                with open(metrics_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if on_chunk:
                on_chunk(record)
            if (
                out
                and config.checkpoint_every
                and int(carry.step) - last_checkpoint >= config.checkpoint_every
            ):
                save_checkpoint(out, run, carry)
                last_checkpoint = int(carry.step)
    except KeyboardInterrupt:
        interrupted = True
    if out:
        save_checkpoint(out, run, carry)
    final = task.evaluate(run.task_params, *run.modules(carry.params)) if not interrupted else {}
    record.update(final)
    wall = time.perf_counter() - start
    done = int(carry.step) - start_step
    result = {
        "config": dataclasses.asdict(config),
        "task": config.task,
        "learner": config.learner,
        "seed": config.seed,
        "metric": task.metric,
        "value": record.get(task.metric),
        "data": getattr(task, "description", None),
        "steps": int(carry.step),
        "steps_per_second": done / wall if wall > 0 else None,
        "state_mb": state_megabytes(run, carry),
        "metrics": record,
        "interrupted": interrupted,
    }
    if out:
        with open(os.path.join(out, "result.json"), "w") as fh:
            json.dump(result, fh, indent=2)
    return result


def read_metrics(out: str) -> list[dict]:
    """The records of ``out/metrics.jsonl``."""
    with open(os.path.join(out, "metrics.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]
