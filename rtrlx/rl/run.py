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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._tree import data_to_keys as _data_to_keys
from .._tree import keys_to_data as _keys_to_data
from ..driver import TrainingError
from ..learners import make as make_learner
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

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field and the fix."""
        make_env(self.env)
        if self.core not in CORES:
            raise ValueError(f"unknown core {self.core!r}; valid cores: {', '.join(CORES)}.")
        if self.agent not in AGENTS:
            raise ValueError(f"unknown agent {self.agent!r}; valid agents: {', '.join(AGENTS)}.")
        for name in ("steps", "seeds", "chunks", "recurrent_params"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.hidden is not None and self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden}.")
        hyper = ACConfig if self.agent == "ac" else PPOConfig
        fields = {f.name for f in dataclasses.fields(hyper)}
        unknown = set(self.agent_params) - fields
        if unknown:
            raise ValueError(
                f"agent {self.agent!r} has no parameter {', '.join(sorted(unknown))}; "
                f"its parameters: {', '.join(sorted(fields))}."
            )

    @property
    def learner_spec(self) -> str:
        """The learner in use."""
        return self.learner or CORES[self.core]


@dataclass
class Setup:
    """A run's agent and the numbers that describe it."""

    agent: Agent
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
    else:
        agent = ppo(
            env, env_params, cell, learner, PPOConfig(**config.agent_params), config.head_width
        )
    per_iteration = agent.steps_per_iteration * agent.streams
    iterations = max(1, config.steps // per_iteration)
    chunks = min(config.chunks, iterations)
    return Setup(
        agent=agent,
        hidden=hidden,
        recurrent_params=recurrent_params(config.core, d, hidden),
        iterations_per_chunk=math.ceil(iterations / chunks),
        chunks=math.ceil(iterations / math.ceil(iterations / chunks)),
        prediction=env.num_actions == 1,
    )


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
            record["final_msre"] = float(np.mean([c["msre"][s] for c in last]))
        out.append(record)
    return out


def _init(setup: Setup, config: RLConfig) -> Any:
    # Seed s gets the same key whatever the first seed and the number of seeds beside it.
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(
        np.arange(config.seed, config.seed + config.seeds)
    )
    return eqx.filter_jit(jax.vmap(setup.agent.init))(keys)


def _save(out: str, state: Any, progress: dict) -> None:
    tmp = os.path.join(out, "checkpoint.eqx.tmp")
    eqx.tree_serialise_leaves(tmp, _keys_to_data(state))
    os.replace(tmp, os.path.join(out, "checkpoint.eqx"))
    with open(os.path.join(out, "progress.json"), "w") as fh:
        json.dump(progress, fh)


def train(
    config: RLConfig,
    *,
    out: str | None = None,
    resume: bool = False,
    on_chunk: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``config.seeds`` agents at once; return the run's summary.

    Args:
        config: the run.
        out: directory for ``summary.json``, ``curves.jsonl``, ``curve.png`` and a
            checkpoint (None: nothing written).
        resume: continue the run checkpointed in ``out``.
        on_chunk: called with each chunk's record (for progress bars).

    Returns:
        ``{"config", "records": [one per seed], "chunks": [per-chunk records],
        "interrupted"}`` (Ctrl-C stops after the last finished chunk); a seed's
        record has env, core, learner, agent, seed, hidden, recurrent_params, steps,
        final_return (and final_msre on prediction tasks), steps_per_second (this seed's
        environment steps per second while all seeds ran together) and
        total_steps_per_second.

    Raises:
        TrainingError: when the parameters stop being finite.
        ValueError: for a bad configuration.

    Examples:
        >>> from rtrlx.rl.run import RLConfig, train
        >>> summary = train(RLConfig(env="RepeatPreviousEasy", core="lru", hidden=8,
        ...                          steps=200, seeds=2, chunks=2))
        >>> len(summary["records"]), summary["records"][0]["steps"]
        (2, 200)
    """
    setup = build(config)
    agent = setup.agent
    state = _init(setup, config)
    chunks: list[dict] = []
    if resume:
        if out is None or not os.path.exists(os.path.join(out, "checkpoint.eqx")):
            raise ValueError(f"--resume: no checkpoint in {out!r}; start a run without it.")
        with open(os.path.join(out, "progress.json")) as fh:
            progress = json.load(fh)
        if progress["config"] != _jsonable(config):
            raise ValueError(f"--resume: the run in {out!r} has a different configuration.")
        data = eqx.tree_deserialise_leaves(
            os.path.join(out, "checkpoint.eqx"), _keys_to_data(state)
        )
        state = _data_to_keys(data, state)
        chunks = progress["chunks"]
    run_chunk = eqx.filter_jit(jax.vmap(lambda s: agent.chunk(s, setup.iterations_per_chunk)))
    per_chunk = setup.iterations_per_chunk * agent.steps_per_iteration * agent.streams
    if out:
        os.makedirs(out, exist_ok=True)
    first = len(chunks)
    interrupted = False
    try:
        for index in range(first, setup.chunks):
            tic = time.perf_counter()
            state, records = run_chunk(state)
            jax.block_until_ready(records)
            seconds = time.perf_counter() - tic
            cell, head = agent.network(state)
            leaves = jax.tree.leaves(eqx.filter((cell, head), eqx.is_inexact_array))
            if not all(np.isfinite(np.asarray(a)).all() for a in leaves):
                raise TrainingError(
                    f"{config.agent} with {config.core}/{config.learner_spec} on {config.env}: "
                    f"the parameters became non-finite in chunk {index + 1}. Lower --lr."
                )
            record = {
                "step": (index + 1) * per_chunk,
                "seconds": seconds,
                "compiled": index == first,  # this chunk's time includes compiling
                **chunk_metrics(records, agent.gamma, setup.prediction),
            }
            chunks.append(record)
            if out:
                with open(os.path.join(out, "curves.jsonl"), "a" if index else "w") as fh:
                    fh.write(json.dumps(record) + "\n")
                _save(out, state, {"config": _jsonable(config), "chunks": chunks})
            if on_chunk:
                on_chunk(record)
    except KeyboardInterrupt:  # the checkpoint of the last chunk stays
        if not chunks:
            raise
        interrupted = True
    timed = [c for c in chunks if not c["compiled"]] or chunks
    rate = float(np.median([per_chunk / c["seconds"] for c in timed]))
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
            "steps": chunks[-1]["step"],
            **finals[s],
            "steps_per_second": rate,
            "total_steps_per_second": rate * config.seeds,
        }
        for s in range(config.seeds)
    ]
    summary = {
        "config": _jsonable(config),
        "records": records,
        "chunks": chunks,
        "interrupted": interrupted,
    }
    if out:
        with open(os.path.join(out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
        plot_curves(summary, os.path.join(out, "curve.png"))
    return summary


def _jsonable(config: RLConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def plot_curves(summary: dict, path: str) -> None:
    """The learning curve of every seed (and their mean) against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, chunks = summary["config"], summary["chunks"]
    metric = "msre" if "msre" in chunks[0] else "return"
    steps = [c["step"] for c in chunks]
    values = np.array(
        [[np.nan if v is None else v for v in c[metric]] for c in chunks], dtype=float
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in range(values.shape[1]):
        ax.plot(steps, values[:, s], color="C0", alpha=0.3, lw=1)
    ax.plot(steps, np.nanmean(values, axis=1), color="C0", lw=2, label="mean of seeds")
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
