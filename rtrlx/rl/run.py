"""Training agents on environments, all seeds as one ``vmap``: what ``rtrlx rl`` runs.

A run is jitted chunk by chunk (for the progress bar and checkpoints); within a chunk the
seeds advance together under one ``vmap`` of the agent's scan. Each chunk reports, per
seed, the mean return of the episodes that ended in it and, on the prediction tasks
(trace conditioning and patterning), the mean squared return error of the values.
"""

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._extras import require
from ..driver import ChunkInfo, Job, RunInfo, drive
from ..learners import Layout, check_layout, choose_layout
from ..learners import make as make_learner
from ..losses import mse
from ._registry import make as make_env
from .actor_critic import ACConfig, actor_critic
from .conditioning import return_error
from .core import CORES, Agent, make_core, recurrent_params, width_for
from .ppo import PPOConfig, ppo

AGENTS = ("ac", "ppo")


@dataclass(frozen=True)
class RLConfig:
    """One ``rtrlx rl`` run.

    Attributes:
        env: environment name (``rtrlx.rl.make``).
        core: recurrent core, one of ``rtrlx.rl.core.CORES``.
        agent: ``ac`` (online actor-critic) or ``ppo``.
        learner: the core's learner (None: the core's default, e.g. ``diag_rtrl`` for RTUs
            and LRUs, ``tbptt:16`` for the GRU).
        hidden: units of the core (None: as many as ``recurrent_params`` allows).
        recurrent_params: the budget of recurrent parameters that sizes the core, so that
            cores compare at an equal number of them.
        head_width: hidden width of the value and policy heads.
        steps: environment steps per seed.
        seeds: independent seeds, run together as one ``vmap``.
        seed: the first seed.
        chunks: progress updates (and checkpoints) over the run.
        agent_params: the agent's hyperparameters by name (``ACConfig`` or ``PPOConfig``
            fields, e.g. ``{"lr": 1e-3}``).
        layout: the order of the environments' streams in real-time PPO's learner steps:
            ``"batched"``, ``"streams"`` or ``"auto"`` (:func:`rtrlx.learners.choose_layout`,
            measured when the run is built; a core sized by ``recurrent_params`` has a state
            far under the 256 KiB from which the order is measured, and stays batched). The
            actor-critic runs one stream per agent, so it has no order to choose.
    """

    env: str = "RepeatPreviousEasy"
    core: str = "rtu-nonlinear"
    agent: str = "ac"
    learner: str | None = None
    hidden: int | None = None
    recurrent_params: int = 2000
    head_width: int = 64
    steps: int = 100_000
    seeds: int = 5
    seed: int = 0
    chunks: int = 20
    agent_params: dict = field(default_factory=dict)
    layout: str = "auto"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field and the fix."""
        make_env(self.env)
        if self.core not in CORES:
            raise ValueError(f"unknown core {self.core!r}; valid cores: {', '.join(CORES)}.")
        if self.agent not in AGENTS:
            raise ValueError(f"unknown agent {self.agent!r}; valid agents: {', '.join(AGENTS)}.")
        for name in ("steps", "seeds", "chunks", "recurrent_params", "head_width"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.hidden is not None and (not _is_int(self.hidden) or self.hidden < 1):
            raise ValueError(f"hidden must be a positive integer, got {self.hidden!r}.")
        check_layout(self.layout, make_learner(self.learner_spec))
        hyper = ACConfig if self.agent == "ac" else PPOConfig
        fields = {f.name: f for f in dataclasses.fields(hyper)}
        unknown = set(self.agent_params) - set(fields)
        if unknown:
            raise ValueError(
                f"agent {self.agent!r} has no parameter {', '.join(sorted(unknown))}; "
                f"its parameters: {', '.join(sorted(fields))}."
            )
        for name, value in self.agent_params.items():
            if value is None and fields[name].default is None:  # e.g. gamma: the env's
                continue
            _check_agent_param(name, value, fields[name].type is int)

    @property
    def learner_spec(self) -> str:
        """The learner in use."""
        return self.learner or CORES[self.core]


#: The valid range of each agent hyperparameter: (test, the range in words).
_AGENT_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "lam": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "gae_lambda": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "lr": (lambda v: v > 0, "> 0"),
    "clip": (lambda v: v > 0, "> 0"),
    "max_grad_norm": (lambda v: v > 0, "> 0"),
    "value_coef": (lambda v: v >= 0, ">= 0"),
    "entropy_coef": (lambda v: v >= 0, ">= 0"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_agent_param(name: str, value: Any, integer: bool) -> None:
    """Raise ``ValueError`` naming the parameter, its value and the valid range."""
    test, words = _AGENT_RANGES.get(name, (lambda v: v >= 1, ">= 1"))
    kind = "an integer" if integer else "a number"
    example = f"--agent-param {name}=" + ("4" if integer else "0.9" if "lam" in name else "0.01")
    number = _is_int(value) or (isinstance(value, float) and not integer)
    if not number or not math.isfinite(value) or not test(value):
        raise ValueError(
            f"agent parameter {name} must be {kind} {words}, got {value!r} (e.g. {example})."
        )


@dataclass
class Setup:
    """A run's agent and the numbers that describe it."""

    agent: Agent
    layout: Layout  # the order of the streams in the learner's batched steps
    hidden: int
    recurrent_params: int
    iterations_per_chunk: int
    chunks: int
    prediction: bool  # a prediction task: report the return error


def build(config: RLConfig) -> Setup:
    """The agent of ``config``, and how many iterations each chunk runs."""
    config.validate()
    env, env_params = make_env(config.env)
    d = env.observation_size
    hidden = config.hidden or width_for(config.core, d, config.recurrent_params)
    learner = make_learner(config.learner_spec)

    def cell(key):
        return make_core(config.core, d, hidden, key=key)

    if config.agent == "ac":
        agent = actor_critic(
            env, env_params, cell, learner, ACConfig(**config.agent_params), config.head_width
        )
        layout = Layout("batched", "the actor-critic runs one stream per agent")
    else:
        hyper = PPOConfig(**config.agent_params)
        layout = _ppo_layout(config, learner, cell, d, hyper.envs)
        agent = ppo(env, env_params, cell, learner, hyper, config.head_width, layout.name)
    per_iteration = agent.steps_per_iteration * agent.streams
    iterations = max(1, config.steps // per_iteration)
    chunks = min(config.chunks, iterations)
    return Setup(
        agent=agent,
        layout=layout,
        hidden=hidden,
        recurrent_params=recurrent_params(config.core, d, hidden),
        iterations_per_chunk=math.ceil(iterations / chunks),
        chunks=math.ceil(iterations / math.ceil(iterations / chunks)),
        prediction=env.num_actions == 1,
    )


def _ppo_layout(config: RLConfig, learner: Any, cell: Any, d: int, envs: int) -> Layout:
    """The order of real-time PPO's streams (truncated PPO replays whole sequences)."""
    if learner.truncation is not None:
        return Layout("batched", "truncated PPO replays sequences through its own path")
    core = cell(jax.random.key(0))
    head = eqx.nn.Linear(core.output_size, 1, key=jax.random.key(1))
    x = jnp.zeros((envs, d))
    return choose_layout(learner, core, head, mse, x, jnp.zeros((envs, 1)), config.layout)


def chunk_metrics(records: dict, gamma: float, prediction: bool) -> dict:
    """Per-seed statistics of one chunk's records (arrays ``(seeds, time, streams)``)."""
    done = np.asarray(records["done"])
    returns = np.asarray(records["episode_return"]).sum(axis=(1, 2))
    episodes = done.sum(axis=(1, 2))
    out = {
        "episodes": episodes.tolist(),
        "return_sum": returns.tolist(),
        "return": [float(r / e) if e else None for r, e in zip(returns, episodes, strict=True)],
    }
    if prediction:
        errors = jax.vmap(jax.vmap(return_error, in_axes=(1, 1, None)), in_axes=(0, 0, None))(
            records["reward"], records["value"], gamma
        )
        out["msre"] = np.asarray(errors).mean(axis=1).tolist()
    return out


def final_metrics(chunks: list[dict], prediction: bool, seeds: int) -> list[dict]:
    """Per seed: the mean over the last 10% of the run's chunks (at least one)."""
    last = chunks[-max(1, math.ceil(len(chunks) / 10)) :]
    out = []
    for s in range(seeds):
        episodes = sum(c["episodes"][s] for c in last)
        total = sum(c["return_sum"][s] for c in last)
        record: dict = {"final_return": total / episodes if episodes else None}
        if prediction:
            msre = [c["msre"][s] for c in last]
            record["final_msre"] = float(np.mean(msre)) if msre else None
        out.append(record)
    return out


def _init(setup: Setup, config: RLConfig) -> Any:
    # Seed s gets the same key whatever the first seed and the number of seeds beside it.
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(
        np.arange(config.seed, config.seed + config.seeds)
    )
    return eqx.filter_jit(jax.vmap(setup.agent.init))(keys)


def _job(config: RLConfig, setup: Setup) -> Job:
    """The run as the driver's :class:`rtrlx.driver.Job`.

    One chunk is a whole number of the agent's iterations, all seeds under one ``vmap``.
    """
    agent = setup.agent
    per_iteration = agent.steps_per_iteration * agent.streams

    @eqx.filter_jit
    def chunk(state: Any, n: int) -> tuple[Any, Any]:
        return jax.vmap(lambda s: agent.chunk(s, n // per_iteration))(state)

    def finite(state: Any, records: Any) -> str | None:
        leaves = jax.tree.leaves(eqx.filter(agent.network(state), eqx.is_inexact_array))
        return None if all(np.isfinite(np.asarray(a)).all() for a in leaves) else "the parameters"

    def record(state: Any, records: Any, info: ChunkInfo) -> dict:
        return {
            "seconds": info.seconds,
            "compiled": info.compiled,  # this chunk's time includes compiling
            **chunk_metrics(records, agent.gamma, setup.prediction),
        }

    def result(state: Any, chunks: list[dict], info: RunInfo) -> dict:
        return _summary(config, setup, chunks, info.interrupted)

    hyper = ACConfig if config.agent == "ac" else PPOConfig
    lower = f"{config.agent_params.get('lr', hyper().lr) / 10:.3g}"
    return Job(
        carry=_init(setup, config),
        chunk=chunk,
        record=record,
        result=result,
        chunk_steps=setup.iterations_per_chunk * per_iteration,
        label=f"{config.agent} with {config.core}/{config.learner_spec} on {config.env}",
        finite=finite,
        restart_fix=f"lower --lr (e.g. {lower})",
        resume_fix=f"add --resume --allow-change lr --lr {lower} to the same command",
    )


def _summary(config: RLConfig, setup: Setup, chunks: list[dict], interrupted: bool) -> dict:
    """The run's summary from all of its chunks' records (those before a resume too)."""
    ends = [c["step"] for c in chunks]
    sizes = np.diff([0, *ends])
    timed = [(n, c) for n, c in zip(sizes, chunks, strict=True) if not c["compiled"]]
    timed = timed or list(zip(sizes, chunks, strict=True))
    rate = float(np.median([n / c["seconds"] for n, c in timed])) if timed else None
    finals = final_metrics(chunks, setup.prediction, config.seeds)
    records = [
        {
            "env": config.env,
            "core": config.core,
            "learner": config.learner_spec,
            "agent": config.agent,
            "seed": config.seed + s,
            "hidden": setup.hidden,
            "recurrent_params": setup.recurrent_params,
            "layout": setup.layout.as_dict(),
            "steps": ends[-1] if ends else 0,
            **finals[s],
            "steps_per_second": rate,
            "total_steps_per_second": None if rate is None else rate * config.seeds,
        }
        for s in range(config.seeds)
    ]
    return {
        "config": _jsonable(config),
        "records": records,
        "chunks": chunks,
        "interrupted": interrupted,
    }


#: Settings that may differ on resume without asking (they change how the run is chunked).
RESUMABLE = ("steps", "chunks")
#: Settings that ``allow_changes`` may name, and the config field each one is.
CHANGEABLE = {"lr": "agent_params.lr"}


def train(
    config: RLConfig,
    *,
    out: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_changes: Collection[str] = (),
    on_chunk: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``config.seeds`` agents at once on the run driver; return the run's summary.

    Args:
        config: the run.
        out: directory for ``summary.json``, ``curves.jsonl`` (one record per chunk),
            ``curve.png``, ``config.json`` and a checkpoint (None: nothing written). It is
            locked while the run goes.
        resume: continue the run checkpointed in ``out`` (the same config but for
            ``steps``, ``chunks`` and ``allow_changes``).
        overwrite: start afresh in an ``out`` that holds another run (its files deleted).
        allow_changes: settings a resumed run may change: ``("lr",)`` goes on from the
            checkpoint under ``agent_params["lr"]`` (Adam's state is kept).
        on_chunk: called with each chunk's record (for progress bars).

    Returns:
        ``{"config", "records": [one per seed], "chunks": [per-chunk records],
        "interrupted"}`` (Ctrl-C saves the last finished chunk's state); a seed's
        record has env, core, learner, agent, seed, hidden, recurrent_params, layout
        (the order of the streams and why: :class:`rtrlx.learners.Layout`), steps,
        final_return (and final_msre on prediction tasks), steps_per_second (this seed's
        environment steps per second while all seeds ran together) and
        total_steps_per_second.

    Raises:
        TrainingError: when the parameters stop being finite (it names this run's last
            checkpoint and the command that goes on from it).
        RunError: ``out`` is unusable or held by another run, or the resume request cannot
            be honoured (a different config, naming the setting; a run already done).
        ValueError: for a bad configuration.

    Examples:
        >>> from rtrlx.rl.run import RLConfig, train
        >>> summary = train(RLConfig(env="RepeatPreviousEasy", core="lru", hidden=8,
        ...                          steps=200, seeds=2, chunks=2))
        >>> len(summary["records"]), summary["records"][0]["steps"]
        (2, 200)
    """
    unknown = sorted(set(allow_changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(
            f"cannot allow a change of {', '.join(unknown)} on resume; allowed: "
            f"{', '.join(CHANGEABLE)}."
        )
    setup = build(config)
    total = setup.chunks * setup.iterations_per_chunk
    agent = setup.agent
    summary = drive(
        config,
        lambda: _job(config, setup),
        steps=total * agent.steps_per_iteration * agent.streams,
        out=out,
        resume=resume,
        overwrite=overwrite,
        resumable=RESUMABLE,
        allow_changes=[CHANGEABLE[name] for name in allow_changes],
        checkpoint_every=1,  # every chunk
        on_chunk=on_chunk,
        metrics_file="curves.jsonl",
        result_file="summary.json",
    )
    if out and summary["chunks"]:
        plot_curves(summary, os.path.join(out, "curve.png"))
    return summary


def _jsonable(config: RLConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def plot_curves(summary: dict, path: str) -> None:
    """The learning curve of every seed (and their mean) against environment steps."""
    matplotlib = require("matplotlib", "rtrlx rl's curve.png")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "rtrlx rl's curve.png")

    config, chunks = summary["config"], summary["chunks"]
    metric = "msre" if "msre" in chunks[0] else "return"
    steps = [c["step"] for c in chunks]
    values = np.array(
        [[np.nan if v is None else v for v in c[metric]] for c in chunks], dtype=float
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in range(values.shape[1]):
        ax.plot(steps, values[:, s], color="C0", alpha=0.3, lw=1)
    with warnings.catch_warnings():  # a chunk in which no seed ended an episode: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=1)
    ax.plot(steps, mean, color="C0", lw=2, label="mean of seeds")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("mean squared return error" if metric == "msre" else "episode return")
    if metric == "msre":
        ax.set_yscale("log")
    learner = config["learner"] or CORES[config["core"]]
    ax.set_title(f"{config['agent']} · {config['core']} ({learner}) · {config['env']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
