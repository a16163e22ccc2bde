"""Online training: parameters updated as the streams flow, with checkpoints and resume.

``train(TrainConfig(...))`` runs one learner on one task on the run driver
(:mod:`rtrlx.driver`: chunks, checkpoints, resume, the run directory's lock, metrics). Each
chunk is one jitted ``lax.scan`` over its steps, in which every step generates the batch's
inputs, advances the learner, and (every ``update_every`` steps) applies the optax update.
Nothing in a chunk loops over time in Python.

The batch's streams go through the learner's step in the order that is fastest for the run
(:func:`rtrlx.learners.choose_layout`: all together, or one after another within each step
when one stream's traces are large), chosen once when the run starts, kept in the
checkpoint, and reported in the result.
"""

import dataclasses
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ._errors import UnsupportedCellError
from ._tree import (
    default_float,
    keys_to_data,
    reset_where,
    standard_promotion,
    with_standard_promotion,
)
from .cells import build_cell, cell_names, check_cell_name
from .driver import CONFIG, ChunkInfo, Job, RunError, RunInfo, TrainingError, drive, read_records
from .learners import (
    LAYOUTS,
    Layout,
    check_layout,
    choose_layout,
    layout_step,
    restart_streams,
)
from .learners import make as make_learner
from .learners._registry import valid_names
from .optim import adam_tf1
from .tasks import TASKS
from .tasks import make as make_task

OPTIMIZERS = ("adam", "adam-tf1", "sgd")
#: What ``clip`` applies to: every gradient, or the cell's only.
CLIP_SCOPES = ("all", "cell")

__all__ = ["RunError", "TrainConfig", "TrainingError", "build", "read_metrics", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """One online training run: the library's and the command line's configuration.

    Attributes:
        task: task name (``rtrlx.tasks.TASKS``).
        cell: cell name (``rtrlx.cells.CELLS``, or ``fs-lstm:2`` / ``stacked-lstm:2``:
            :func:`rtrlx.cells.build_cell`), or ``deep-lru`` / ``deep-rtu`` for a
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
        optimizer: ``"adam"`` (optax's), ``"adam-tf1"`` (TensorFlow 1's, as code written
            for it trains: :func:`rtrlx.optim.adam_tf1`) or ``"sgd"``.
        chunk: steps per jitted call (the granularity of progress and checkpoints).
        checkpoint_every: steps between checkpoints (rounded up to whole chunks; 0: none).
        eval_every: steps between held-out evaluations (0: only at the end).
        task_params: overrides of the task's parameters.
        layout: how the batch's streams go through the learner's step: ``"batched"``
            (all together), ``"streams"`` (one after another within each step; learners
            with ``independent_streams``) or ``"auto"`` (the faster one, measured when the
            run starts: :func:`rtrlx.learners.choose_layout`). The gradients are the same
            up to float rounding.
        init_scale: 0 for the cell's and the head's own initialisation; > 0 draws every
            parameter of both (weights and biases) from ``N(0, init_scale**2)``, as the
            KF-RTRL and OK code does with 0.01.
        clip: 0 for no clipping; > 0 rescales the gradient to norm at most ``clip``
            before each update.
        clip_scope: what ``clip`` measures and rescales: ``"all"`` (every parameter's
            gradient, one global norm) or ``"cell"`` (the cell's only, the readout's
            unclipped, as the KF-RTRL and OK code clips its recurrent matrix).
        cell_grad_scale: multiplies the cell's gradient before the clip and the optimizer
            (1: as computed). The OK code's recurrent gradient is the batch mean divided by
            the batch size again, ``1 / batch`` here. Under Adam a constant scale changes
            only how much epsilon weighs and, with ``clip``, where the clip bites (the clip
            measures the scaled gradient, as that code's does).
        recipe: the published protocol this run follows (``name@version``,
            :mod:`rtrlx.recipes`), or empty; a record, not a setting: a resumed run keeps
            the label it started with, whether or not the resuming command names it.
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
    layout: str = "auto"
    init_scale: float = 0.0
    clip: float = 0.0
    clip_scope: str = "all"
    cell_grad_scale: float = 1.0
    recipe: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field and the valid choices."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid tasks: {', '.join(TASKS)}.")
        if self.cell not in DEEP_CELLS:
            try:
                check_cell_name(self.cell)
            except ValueError:
                raise ValueError(
                    f"unknown cell {self.cell!r}; valid cells: {cell_names()}, "
                    f"{', '.join(DEEP_CELLS)}."
                ) from None
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
        for name in ("checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must be >= 0 (0: {'never' if name[0] == 'c' else 'at the end'}"
                    f"), got {getattr(self, name)}."
                )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        for name in ("init_scale", "clip"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0 (0: off), got {value!r}.")
        value = self.cell_grad_scale
        if not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise ValueError(f"cell_grad_scale must be a finite number > 0, got {value!r}.")
        if self.clip_scope not in CLIP_SCOPES:
            raise ValueError(
                f"unknown clip_scope {self.clip_scope!r}; valid: {', '.join(CLIP_SCOPES)}."
            )
        check_layout(self.layout, learner)
        task, params = make_task(self.task, **self.task_params)
        if getattr(task, "model", None) is None:
            cell = make_cell(
                self.cell, task.input_size, self.hidden, self.layers, jax.random.key(0)
            )
            try:
                state = jax.eval_shape(
                    lambda: learner.init(cell, key=jax.random.key(0), batch_size=self.batch)
                )
            except UnsupportedCellError as err:
                raise ValueError(str(err)) from None
            if task.restarts(params, task.init(params, jax.random.key(0))) is not None:
                done = jnp.zeros(self.batch, bool)
                try:
                    jax.eval_shape(lambda s: restart_streams(learner, cell, s, done), state)
                except UnsupportedCellError as err:
                    raise ValueError(
                        f"{err} The task {self.task!r} restarts each stream at its own "
                        "episodes (for copy-ok, --task-param restart_streams=0 turns that off)."
                    ) from None
        period = task.reset_period(params)
        k = learner.truncation
        if period is not None and k is not None and period % k:
            raise ValueError(
                f"{self.learner}: the task resets every stream every {period} steps, which "
                f"must be a multiple of the truncation {k} (a reset inside a window would cut "
                f"it wrongly); pick k dividing {period}."
            )


#: Stacks that ``--cell`` can name: :class:`rtrlx.models.DeepRecurrent` of LRU or RTU blocks.
DEEP_CELLS = ("deep-lru", "deep-rtu")


def make_cell(name: str, input_size: int, hidden: int, layers: int, key: Any) -> Any:
    """A cell by its command-line name (``rtrlx.cells.build_cell``; ``deep-*``: a stack).

    ``fs-lstm:2`` and ``stacked-lstm:2`` name composites; ``deep-lru`` and ``deep-rtu`` build
    a :class:`rtrlx.models.DeepRecurrent` stack of ``layers`` blocks.
    """
    if name in DEEP_CELLS:
        from .models import DeepRecurrent

        return DeepRecurrent(input_size, hidden, layers=layers, cell=name[5:], key=key)
    return build_cell(name, input_size, hidden, key=key)


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
    key: jax.Array  # the loop's PRNG key (data and the task's draws)
    layout: jax.Array  # index into LAYOUTS of the step's order, int32; -1 until chosen


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
    layout: Layout | None = None  # the order of the streams, once chosen

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
    if config.init_scale > 0:
        params = _normal_init(params, config.init_scale, jax.random.fold_in(k_cell, 1))
    optimizer = _optimizer(config, params)
    run = Run(
        config, task, task_params, learner, static, optimizer, task.reset_period(task_params)
    )
    task_state = task.init_batch(task_params, k_task, config.batch)
    learner_state = learner.init(cell, key=k_learn, batch_size=config.batch)
    level = jnp.asarray(task.init_level(task_params), default_float())
    example_y = jax.eval_shape(
        lambda: task.step(task_params, level, jax.tree.map(lambda a: a[0], task_state), k_task)
    )[2]
    stats_shape = jax.eval_shape(
        task.stats, jax.ShapeDtypeStruct((task.output_size,), default_float()), example_y
    )
    running = task.init_running(task_params)
    running = jnp.zeros(stats_shape.shape) if running is None else jnp.asarray(running)
    carry = Carry(
        params=params,
        opt_state=with_standard_promotion(optimizer.init, params),
        learner_state=learner_state,
        task_state=task_state,
        level=level,
        running=running.astype(default_float()),
        accum=jax.tree.map(jnp.zeros_like, params),
        step=jnp.zeros((), jnp.int32),
        key=k_loop,
        layout=jnp.asarray(-1, jnp.int32),
    )
    return run, carry


def _normal_init(params: Any, scale: float, key: Any) -> Any:
    """Every parameter drawn afresh from ``N(0, scale**2)``."""
    leaves, treedef = jax.tree.flatten(params)
    keys = list(jax.random.split(key, len(leaves)))
    drawn = [
        scale * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, drawn)


def _optimizer(config: TrainConfig, params: Any) -> optax.GradientTransformation:
    """The optimizer at ``config.lr``, after the cell's scale and the clip where asked.

    A constant learning rate is not part of the optimizers' state: a checkpoint's optimizer
    state goes on under a new lr (``allow_changes=("lr",)`` on resume).
    """
    made = {"adam": optax.adam, "adam-tf1": adam_tf1, "sgd": optax.sgd}
    optimizer = made[config.optimizer](config.lr)
    cell_params, head_params = params
    cell_only = (
        jax.tree.map(lambda _: True, cell_params),
        jax.tree.map(lambda _: False, head_params),
    )
    before = []
    if config.cell_grad_scale != 1:
        before.append(optax.masked(optax.scale(config.cell_grad_scale), cell_only))
    if config.clip:
        clip = optax.clip_by_global_norm(config.clip)
        before.append(optax.masked(clip, cell_only) if config.clip_scope == "cell" else clip)
    return optax.chain(*before, optimizer) if before else optimizer


Sums = tuple[jax.Array, jax.Array]  # (training loss, task statistics) summed over a chunk


def _chunk_fn(run: Run) -> Callable[[Carry, int], tuple[Carry, Sums]]:
    """The run's chunk: ``n`` steps in the streams' order, chosen on the first call."""
    chunks: dict[str, Callable[[Carry, int], tuple[Carry, Sums]]] = {}

    def chunk(carry: Carry, n: int) -> tuple[Carry, Sums]:
        code = int(carry.layout)
        if code < 0:
            run.layout = _choose_layout(run, carry)
            code = LAYOUTS.index(run.layout.name)
            carry = carry._replace(layout=jnp.asarray(code, jnp.int32))
        elif run.layout is None:
            run.layout = Layout(LAYOUTS[code], "kept from the checkpoint")
        name = LAYOUTS[code]
        if name not in chunks:
            chunks[name] = _chunk_in(run, layout_step(run.learner, name))
        return chunks[name](carry, n)

    return chunk


def _choose_layout(run: Run, carry: Carry) -> Layout:
    """The streams' order for this run (:func:`rtrlx.learners.choose_layout`)."""
    cell, head = run.modules(carry.params)
    keys = jax.random.split(carry.key, run.config.batch)
    _, x, y = jax.vmap(run.task.step, in_axes=(None, None, 0, 0))(
        run.task_params, carry.level, carry.task_state, keys
    )
    return choose_layout(run.learner, cell, head, run.task.loss, x, y, run.config.layout)


def _chunk_in(run: Run, learner_step: Callable) -> Callable[[Carry, int], tuple[Carry, Sums]]:
    """The jitted chunk with ``learner_step`` as the batch's step (one of the layouts)."""
    config, task, tparams = run.config, run.task, run.task_params
    smoothing = float(getattr(tparams, "smoothing", 0.01))

    def one_step(state_sums: tuple[Carry, Sums], _: Any) -> tuple[tuple[Carry, Sums], None]:
        carry, (loss_sum, totals) = state_sums
        cell, head = run.modules(carry.params)
        key, k_task = jax.random.split(carry.key)
        task_state, x, y = jax.vmap(task.step, in_axes=(None, None, 0, 0))(
            tparams, carry.level, carry.task_state, jax.random.split(k_task, config.batch)
        )
        state = carry.learner_state
        if run.period is not None:  # the task restarts every stream: so do the traces
            state = lax.cond(
                carry.step % run.period == 0, lambda s: _restart(run, cell, s), lambda s: s, state
            )
        restarts = _stream_restarts(run, carry.task_state)
        if restarts is not None:  # streams at their own episode boundaries restart
            state = restart_streams(run.learner, cell, state, restarts)
        state, loss, grads = learner_step(cell, head, task.loss, state, x, y)
        out = jax.vmap(lambda h: head(cell.features(h)))(state.hidden)
        per_stream = jax.vmap(task.stats)(out, y)
        stats = (jnp.mean if task.running_mean else jnp.sum)(per_stream, axis=0)
        stats = stats.astype(default_float())
        running = (1 - smoothing) * carry.running + smoothing * stats
        level, running = task.next_level(tparams, carry.level, running)

        def update(args):
            params, opt_state, accum = args
            # optax mixes Python floats with int32 step counts: standard promotion even
            # when the user runs JAX with strict promotion.
            with standard_promotion():
                updates, opt_state = run.optimizer.update(accum, opt_state, params)
            return (
                optax.apply_updates(params, updates),
                opt_state,
                jax.tree.map(jnp.zeros_like, accum),
            )

        if config.update_every == 1:  # the step's gradients as they are: no sum to keep
            params, opt_state, _ = update((carry.params, carry.opt_state, grads))
            accum = carry.accum
        else:
            args = (carry.params, carry.opt_state, jax.tree.map(jnp.add, carry.accum, grads))
            params, opt_state, accum = lax.cond(
                (carry.step + 1) % config.update_every == 0, update, lambda a: a, args
            )
        carry = Carry(
            params,
            opt_state,
            state,
            task_state,
            jnp.asarray(level, default_float()),
            running.astype(default_float()),
            accum,
            carry.step + 1,
            key,
            carry.layout,
        )
        return (carry, (loss_sum + loss.astype(default_float()), totals + stats)), None

    @eqx.filter_jit
    def chunk(carry: Carry, n: int) -> tuple[Carry, Sums]:
        zero = (jnp.zeros((), default_float()), jnp.zeros_like(carry.running))
        (carry, sums), _ = lax.scan(one_step, (carry, zero), None, length=n)
        return carry, sums

    return chunk


def _stream_restarts(run: Run, task_state: Any) -> jax.Array | None:
    """Which streams restart before this step (the task's own boundaries), or None."""
    one = jax.tree.map(lambda a: a[0], task_state)
    if run.task.restarts(run.task_params, one) is None:
        return None
    return jax.vmap(run.task.restarts, in_axes=(None, 0))(run.task_params, task_state)


def _restart(run: Run, cell: Any, state: Any) -> Any:
    """Every stream's learner state afresh (its PRNG keys keep running)."""
    fresh = run.learner.init(cell, key=jax.random.key(0), batch_size=run.config.batch)
    return reset_where(jnp.asarray(True), state, fresh)


def restart_learner_state(run: Run, carry: Carry) -> Any:
    """``carry``'s learner state with every stream restarted (at ``carry``'s parameters).

    What a stream's state becomes when it starts a new episode: the hidden state and the
    traces afresh, the PRNG keys running on (:mod:`rtrlx.handover` carries a run to another
    machine this way).
    """
    return _restart(run, run.modules(carry.params)[0], carry.learner_state)


def state_megabytes(run: Run, carry: Carry) -> float:
    """Megabytes of learner state for the whole batch (constant in T for online learners)."""
    leaves = jax.tree.leaves(keys_to_data(carry.learner_state))
    return sum(a.size * a.dtype.itemsize for a in leaves) / 2**20


#: Settings that may differ on resume without asking: they change how a run is chunked,
#: saved and evaluated, not what it computes.
RESUMABLE = ("steps", "chunk", "checkpoint_every", "eval_every")
#: Settings that ``allow_changes`` may name: a resumed run goes on under the new value.
CHANGEABLE = ("lr",)


def _job(config: TrainConfig) -> Job:
    """The run as the driver's :class:`rtrlx.driver.Job`."""
    run, carry = build(config)
    task = run.task
    lower = f"{config.lr / 10:.3g}"

    def finite(carry: Carry, sums: Sums) -> str | None:
        if not bool(jnp.isfinite(sums[0])):
            return "the loss"
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(carry.params)):
            return "the parameters"
        return None

    def record(carry: Carry, sums: Sums, info: ChunkInfo) -> dict:
        n = info.stop - info.start
        out = {
            "loss": float(sums[0]) / n,
            "steps_per_second": n / info.seconds,
            **task.report(run.task_params, carry.level, sums[1]),
        }
        if config.eval_every and info.stop % config.eval_every < n:
            out.update(task.evaluate(run.task_params, *run.modules(carry.params)))
        return out

    def result(carry: Carry, records: list[dict], info: RunInfo) -> dict:
        last = dict(records[-1]) if records and records[-1]["step"] == info.step else {}
        if not info.interrupted:
            last.update(task.evaluate(run.task_params, *run.modules(carry.params)))
        done = info.step - info.start_step
        return {
            "config": dataclasses.asdict(config),
            "task": config.task,
            "learner": config.learner,
            "seed": config.seed,
            "metric": task.metric,
            "value": last.get(task.metric),
            "data": getattr(task, "description", None),
            "steps": info.step,
            "steps_per_second": done / info.seconds if info.seconds > 0 else None,
            "state_mb": state_megabytes(run, carry),
            "layout": run.layout.as_dict() if run.layout is not None else None,
            "metrics": last,
            "interrupted": info.interrupted,
        }

    return Job(
        carry=carry,
        chunk=_chunk_fn(run),
        record=record,
        result=result,
        chunk_steps=config.chunk,
        label=f"{config.learner} on {config.task}",
        finite=finite,
        restart_fix=f"lower --lr (e.g. {lower}), or use --update-every > 1 to average gradients",
        resume_fix=f"add --resume --allow-change lr --lr {lower} to the same command (in "
        f"Python: train(dataclasses.replace(config, lr={lower}), out=..., resume=True, "
        f"allow_changes=('lr',)))",
    )


def train(
    config: TrainConfig,
    *,
    out: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_changes: Collection[str] = (),
    on_chunk: Callable[[dict], None] | None = None,
) -> dict:
    """Train online on the run driver (:func:`rtrlx.driver.drive`); return the run's summary.

    Args:
        config: the run.
        out: a directory for ``metrics.jsonl``, ``checkpoint.eqx``, ``config.json`` and
            ``result.json`` (None: keep nothing on disk). It is locked while the run goes.
        resume: continue the run checkpointed in ``out``: the same config but for
            ``steps``, ``chunk``, ``checkpoint_every``, ``eval_every`` and ``allow_changes``.
        overwrite: start afresh in an ``out`` that holds another run (its files are deleted).
        allow_changes: settings a resumed run may change (``("lr",)``: go on from a
            checkpoint under another learning rate; the optimizer state is kept).
        on_chunk: called with each chunk's metrics record (for progress bars).

    Returns:
        A dict: ``config``, ``metric`` (the task's headline metric name), ``value``, ``steps``,
        ``steps_per_second``, ``state_mb``, ``layout`` (the streams' order and why it was
        chosen: :class:`rtrlx.learners.Layout`), ``metrics`` (the last record),
        ``interrupted``.

    Raises:
        TrainingError: when the loss or the parameters stop being finite. It names the
            checkpoint this run wrote (if any) and the command that goes on from it.
        RunError: ``out`` is unusable or held by another run, or the resume request cannot
            be honoured (a different config, or a run already at ``steps``: nothing is
            run and no file is touched).
        ValueError: for a bad configuration.

    Examples:
        >>> from rtrlx.train import TrainConfig, train
        >>> result = train(TrainConfig(task="adding", cell="gru", learner="snap:1",
        ...                            hidden=4, steps=100, batch=2, chunk=50,
        ...                            task_params={"length": 10}))
        >>> result["metric"], result["steps"]
        ('mse', 100)
    """
    unknown = sorted(set(allow_changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(
            f"cannot allow a change of {', '.join(unknown)} on resume; allowed: "
            f"{', '.join(CHANGEABLE)}."
        )
    if resume and out is not None:
        config = _started_as(config, out)
    return drive(
        config,
        lambda: _job(config),
        steps=config.steps,
        out=out,
        resume=resume,
        overwrite=overwrite,
        resumable=RESUMABLE,
        allow_changes=allow_changes,
        checkpoint_every=config.checkpoint_every,
        on_chunk=on_chunk,
    )


def _started_as(config: TrainConfig, out: str) -> TrainConfig:
    """``config`` with the recipe label the run in ``out`` was started under (a record)."""
    try:
        with open(os.path.join(out, CONFIG)) as fh:
            saved = json.load(fh).get("recipe", "")
    except (OSError, ValueError, AttributeError):
        return config  # no run there, or a damaged one: the driver says which
    return dataclasses.replace(config, recipe=saved)


def read_metrics(out: str) -> list[dict]:
    """The records of ``out/metrics.jsonl``."""
    return read_records(out)
