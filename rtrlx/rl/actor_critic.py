"""Online actor-critic with eligibility traces, updating every step (AC(λ) with RTRL).

The agent lives in one stream and never stores its past. At step ``t`` it runs the core
on the observation, samples ``a_t``, and asks an rtrlx learner for the gradient of
``c_v v_t + log π(a_t | h_t)`` through the core's history (the learner's traces). That
gradient enters an eligibility trace ``e_t = γλ e_{t-1} + g_t``; when the next
observation gives the TD error ``δ_t = r_{t+1} + γ v_{t+1} - v_t``, the parameters move
along ``δ_t e_t`` (as a gradient of ``-δ_t e_t`` to the optimiser), the semi-gradient
TD(λ) critic and the actor of Sutton and Barto (2018, section 13.6) sharing one trace.
With one action the policy is trivial and the agent is TD(λ) prediction.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .._errors import UnsupportedCellError
from .._tree import reset_where, with_standard_promotion
from ..learners import Learner
from ._base import Environment
from .core import Agent, build_network, entropy, env_gamma, split_output


@dataclass(frozen=True)
class ACConfig:
    """Hyperparameters of the online actor-critic.

    Attributes:
        gamma: discount (None: the environment's own ``gamma`` if it has one, else 0.99).
        lam: eligibility-trace decay λ.
        lr: Adam's step size.
        value_coef: weight of ``∇v`` against ``∇log π`` in the shared trace (the critic's
            step size relative to the actor's).
        entropy_coef: entropy bonus, applied to the policy head each step.
    """

    gamma: float | None = None
    lam: float = 0.8
    lr: float = 1e-3
    value_coef: float = 1.0
    entropy_coef: float = 0.01


class ACState(NamedTuple):
    """Everything the online actor-critic carries from step to step (arrays only)."""

    params: Any  # the trainable arrays of (cell, head)
    opt_state: Any
    memory: Any  # the learner's state: h_t and its traces
    trace: Any  # eligibility trace, shaped like params
    value: jax.Array  # v_t, waiting for the next step's TD error
    reward: jax.Array  # r_{t+1}
    new_episode: jax.Array  # the next observation starts an episode
    started: jax.Array  # a TD error is due (False before the first step)
    obs: jax.Array
    env_state: Any
    episode_return: jax.Array
    key: jax.Array  # raw key data (uint32), so the state serialises


def check_streaming(learner: Learner, agent: str) -> None:
    """Refuse learners without a per-step gradient, naming the ones that work.

    AC(λ) weighs each step's gradient by a later TD error through its eligibility trace,
    so it needs ``learner.per_step_grads`` (and a streaming ``step``).
    """
    if not learner.online or not learner.per_step_grads:
        raise UnsupportedCellError(
            f"{agent}: learner {learner.name!r} gives no per-step gradient (bptt needs the "
            "whole sequence; tbptt emits a window's sum at its end). Use a streaming "
            "learner: diag_rtrl (RTU, LRU), rtrl, snap:1, uoro; or --agent ppo, whose "
            "truncated-BPTT core learns from sequences of the rollout."
        )


def actor_critic(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    learner: Learner,
    config: ACConfig = ACConfig(),
    head_width: int = 64,
) -> Agent:
    """The online actor-critic AC(λ), its core's gradients from an rtrlx learner.

    Args:
        env: an :class:`rtrlx.rl.Environment`.
        env_params: its parameters.
        cell_factory: ``cell_factory(key) -> cell``, the recurrent core.
        learner: a streaming rtrlx learner (``diag_rtrl``, ``rtrl``, ``snap:1``, ...).
        config: hyperparameters.
        head_width: hidden width of the value and policy heads.

    Returns:
        An :class:`Agent` with one stream; an iteration is one environment step. The
        hidden state and every trace (the learner's and the eligibility trace) are reset
        when an episode ends.

    Raises:
        UnsupportedCellError: for a learner without a per-step gradient.

    Examples:
        >>> import jax, rtrlx
        >>> from rtrlx.rl.core import make_core
        >>> env, params = rtrlx.rl.make("RepeatPreviousEasy")
        >>> agent = rtrlx.rl.actor_critic(
        ...     env, params, lambda k: make_core("rtu", 4, 8, key=k), rtrlx.diag_rtrl())
        >>> state = agent.init(jax.random.key(0))
        >>> state, records = agent.chunk(state, 10)
        >>> records["reward"].shape
        (10, 1)

    References:
        Elelimy, White, Bowling, White. Real-Time Recurrent Learning using Trace Units in
        Reinforcement Learning. NeurIPS 2024. https://arxiv.org/abs/2409.01449

        Lemmerling, Hasani, Grosu. Real-Time Recurrent Reinforcement Learning. 2024.
        https://arxiv.org/abs/2311.04830
    """
    check_streaming(learner, "actor_critic")
    gamma = env_gamma(env_params, config.gamma)
    optimizer = optax.adam(config.lr)
    template = build_network(cell_factory, env, head_width, jax.random.key(0))
    static = eqx.partition(template, eqx.is_inexact_array)[1]

    def score(out, action):  # the per-step gradient that enters the trace
        value, log_probs = split_output(out)
        return config.value_coef * value + log_probs[action.astype(jnp.int32)]

    def init(key):
        k_net, k_env, k_run = jax.random.split(key, 3)
        cell, head = build_network(cell_factory, env, head_width, k_net)
        params = eqx.filter((cell, head), eqx.is_inexact_array)
        obs, env_state = env.reset(k_env, env_params)
        zero = jnp.zeros((), obs.dtype)
        return ACState(
            params=params,
            opt_state=optimizer.init(params),
            memory=learner.init(cell, key=k_net),
            trace=jax.tree.map(jnp.zeros_like, params),
            value=zero,
            reward=zero,
            new_episode=jnp.zeros((), bool),
            started=jnp.zeros((), bool),
            obs=obs,
            env_state=env_state,
            episode_return=zero,
            key=jax.random.key_data(k_run),
        )

    def step(s: ACState, _):
        cell, head = eqx.combine(s.params, static)
        key, k_act, k_env = jax.random.split(jax.random.wrap_key_data(s.key), 3)
        memory = reset_where(s.new_episode, s.memory, learner.init(cell, key=k_act))
        features = cell.features(cell(memory.hidden, s.obs))
        value, log_probs = split_output(head(features))
        action = jax.random.categorical(k_act, log_probs).astype(jnp.int32)
        bootstrap = jnp.where(s.new_episode, 0.0, value)
        delta = jnp.where(s.started, s.reward + gamma * bootstrap - s.value, 0.0)
        memory, _, grads = learner.step(cell, head, score, memory, s.obs, action)

        def head_entropy(head_params):
            h = eqx.combine(head_params, static[1])
            return entropy(split_output(h(lax.stop_gradient(features)))[1])

        ent = jax.grad(head_entropy)(s.params[1])
        direction = jax.tree.map(lambda e: -lax.stop_gradient(delta) * e, s.trace)
        direction = (
            direction[0],
            jax.tree.map(lambda d, g: d - config.entropy_coef * g, direction[1], ent),
        )
        updates, opt_state = with_standard_promotion(
            optimizer.update, direction, s.opt_state, s.params
        )
        params = optax.apply_updates(s.params, updates)
        decay = gamma * config.lam * (1.0 - s.new_episode.astype(value.dtype))
        trace = jax.tree.map(lambda e, g: decay * e + g, s.trace, grads)
        obs, env_state, reward, done, _ = env.step(k_env, s.env_state, action, env_params)
        episode_return = s.episode_return + reward.astype(s.episode_return.dtype)
        records = {
            "reward": reward,
            "done": done,
            "value": value,
            "episode_return": jnp.where(done, episode_return, 0.0),
        }
        new = ACState(
            params=params,
            opt_state=opt_state,
            memory=memory,
            trace=trace,
            value=value,
            reward=reward.astype(value.dtype),
            new_episode=done,
            started=jnp.ones((), bool),
            obs=obs,
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, episode_return),
            key=jax.random.key_data(key),
        )
        return new, jax.tree.map(lambda a: a[None], records)

    def chunk(state: ACState, iterations: int):
        return lax.scan(step, state, None, length=iterations)

    def modules(state: ACState):
        return eqx.combine(state.params, static)

    return Agent(init, chunk, 1, 1, modules, gamma)
