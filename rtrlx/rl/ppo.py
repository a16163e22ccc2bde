"""PPO with a recurrent core: real-time (RTRL traces from the rollout) or truncated BPTT.

Two ways to get the core's gradient of the PPO loss, chosen by the learner:

- **Real time** (any streaming learner: ``diag_rtrl`` for RTUs and LRUs, ``rtrl``,
  ``snap:1``). During the rollout the learner runs forward with its traces; the state it
  had *before* each step (``h_{t-1}`` and the traces ``dh_{t-1}/dθ``) is stored with the
  transition. The loss of transition ``t`` is then differentiated through one learner
  step from that stored state, so its gradient reaches every earlier step through the
  trace, without replaying the sequence. The stored states are not recomputed after the
  parameters change (the RTU paper's *stale gradient* choice), so after the first
  minibatch the traces are those of the rollout's parameters; the advantages and value
  targets are also those of the rollout (stale targets).
- **Truncated BPTT** (``tbptt:k``). The rollout is cut into sequences of ``k`` steps;
  each is replayed from its stored first hidden state with the current parameters and
  backpropagated through (the hidden state reset inside it where an episode ended):
  recurrent PPO as in common implementations.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax

from .._errors import UnsupportedCellError
from .._tree import with_standard_promotion as _standard
from ..learners._base import Learner, batch_init
from ._base import Environment
from .core import Agent, build_network, entropy, env_gamma, reset_where, split_output


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of PPO.

    Attributes:
        gamma: discount (None: the environment's own ``gamma`` if it has one, else 0.99).
        gae_lambda: λ of the generalised advantage estimate.
        envs: parallel environments per seed.
        rollout: steps per environment between updates.
        epochs: passes over each rollout.
        minibatches: minibatches per pass.
        clip: the ratio clip ε (also the value clip).
        value_coef: weight of the value loss.
        entropy_coef: weight of the entropy bonus.
        lr: Adam's step size.
        max_grad_norm: global-norm gradient clip.
    """

    gamma: float | None = None
    gae_lambda: float = 0.95
    envs: int = 4
    rollout: int = 128
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    lr: float = 3e-4
    max_grad_norm: float = 0.5


class PPOState(NamedTuple):
    """What PPO carries between updates (arrays only)."""

    params: Any
    opt_state: Any
    memory: Any  # real time: the learner's state per env; tbptt: the hidden state per env
    obs: jax.Array  # (envs, obs)
    env_state: Any
    new_episode: jax.Array  # (envs,): the next observation starts an episode
    episode_return: jax.Array  # (envs,)
    key: jax.Array  # raw key data


class Transition(NamedTuple):
    """One step of the rollout, per environment."""

    memory: Any  # the core's memory before this step (after any episode reset)
    obs: jax.Array
    new_episode: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


def ppo_loss(config: PPOConfig):
    """The per-sample PPO loss of a head output, ``y = [action, log π_old, A, target, v_old]``.

    Clipped surrogate, clipped value loss and entropy bonus, as in common implementations.
    """

    def loss(out: jax.Array, y: jax.Array) -> jax.Array:
        action, old_log_prob, advantage, target, old_value = (y[i] for i in range(5))
        value, log_probs = split_output(out)
        ratio = jnp.exp(log_probs[action.astype(jnp.int32)] - old_log_prob)
        clipped = jnp.clip(ratio, 1.0 - config.clip, 1.0 + config.clip)
        policy = -jnp.minimum(ratio * advantage, clipped * advantage)
        value_clipped = old_value + jnp.clip(value - old_value, -config.clip, config.clip)
        value_loss = 0.5 * jnp.maximum((value - target) ** 2, (value_clipped - target) ** 2)
        return policy + config.value_coef * value_loss - config.entropy_coef * entropy(log_probs)

    return loss


def gae(
    values: jax.Array,
    rewards: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and value targets, time on the leading axis."""

    def back(carry, step):
        advantage, next_value = carry
        value, reward, done = step
        alive = 1.0 - done.astype(value.dtype)
        delta = reward + gamma * next_value * alive - value
        advantage = delta + gamma * lam * alive * advantage
        return (advantage, value), advantage

    init = (jnp.zeros_like(last_value), last_value)
    _, advantages = lax.scan(back, init, (values, rewards, dones), reverse=True)
    return advantages, advantages + values


def _truncation(learner: Learner) -> int | None:
    name, _, arg = learner.name.partition(":")
    return int(arg) if name == "tbptt" else None


def ppo(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    learner: Learner,
    config: PPOConfig = PPOConfig(),
    head_width: int = 64,
) -> Agent:
    """PPO whose recurrent core learns in real time (RTRL) or by truncated BPTT.

    Args:
        env: an :class:`rtrlx.rl.Environment`.
        env_params: its parameters.
        cell_factory: ``cell_factory(key) -> cell``, the recurrent core.
        learner: ``tbptt:k`` for recurrent PPO over sequences of ``k`` steps, or a
            streaming learner whose traces give real-time gradients (``diag_rtrl``,
            ``rtrl``, ``snap:1``).
        config: hyperparameters.
        head_width: hidden width of the value and policy heads.

    Returns:
        An :class:`Agent`; an iteration is one rollout and update, ``config.rollout``
        steps of ``config.envs`` streams. Hidden states and traces are reset where an
        episode ends.

    Raises:
        ValueError: when the rollout does not split into the minibatches (or sequences).
        UnsupportedCellError: for a learner without a streaming step, or one whose state
            is not batched per stream (a shared PRNG key or counter).

    Examples:
        >>> import jax, rtrlx
        >>> from rtrlx.rl.core import make_core
        >>> env, params = rtrlx.rl.make("RepeatPreviousEasy")
        >>> config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
        >>> agent = rtrlx.rl.ppo(env, params, lambda k: make_core("rtu", 4, 8, key=k),
        ...                      rtrlx.diag_rtrl(), config)
        >>> state, records = agent.chunk(agent.init(jax.random.key(0)), 2)
        >>> records["reward"].shape
        (16, 2)

    References:
        Schulman, Wolski, Dhariwal, Radford, Klimov. Proximal Policy Optimization
        Algorithms. 2017. https://arxiv.org/abs/1707.06347

        Elelimy, White, Bowling, White. Real-Time Recurrent Learning using Trace Units in
        Reinforcement Learning. NeurIPS 2024. https://arxiv.org/abs/2409.01449
    """
    k = _truncation(learner)
    if k is None and not learner.online:
        raise UnsupportedCellError(
            f"ppo: learner {learner.name!r} cannot stream. Use tbptt:k for recurrent PPO "
            "over k-step sequences, or a streaming learner (diag_rtrl, rtrl, snap:1)."
        )
    samples = config.rollout * config.envs if k is None else (config.rollout // k) * config.envs
    if (k is not None and config.rollout % k) or samples % config.minibatches:
        raise ValueError(
            f"ppo: a rollout of {config.rollout} steps x {config.envs} envs must split into "
            f"{config.minibatches} minibatches"
            + (f" of whole {k}-step sequences" if k is not None else "")
            + "; change --rollout, --envs or --minibatches."
        )
    gamma = env_gamma(env_params, config.gamma)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr, eps=1e-5)
    )
    static = eqx.partition(
        build_network(cell_factory, env, head_width, jax.random.key(0)), eqx.is_inexact_array
    )[1]
    per_sample = ppo_loss(config)
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def fresh(cell, key):
        if k is None:
            return learner.init(cell, key=key, batch_size=config.envs)
        return batch_init(cell, config.envs, cell.init_state)

    def init(key):
        k_net, k_env, k_run = jax.random.split(key, 3)
        cell, head = build_network(cell_factory, env, head_width, k_net)
        params = eqx.filter((cell, head), eqx.is_inexact_array)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, config.envs), env_params
        )
        memory = fresh(cell, k_net)
        if k is None:
            _check_batched(memory, config.envs, learner)
        return PPOState(
            params=params,
            opt_state=optimizer.init(params),
            memory=memory,
            obs=obs,
            env_state=env_state,
            new_episode=jnp.zeros(config.envs, bool),
            episode_return=jnp.zeros(config.envs, obs.dtype),
            key=jax.random.key_data(k_run),
        )

    def advance(cell, head, memory, obs):
        """The core one step forward (traces too, in real time): ``(memory, outputs)``."""
        if k is None:
            zero_y = jnp.zeros(config.envs, obs.dtype)
            memory = learner.step(cell, head, _no_loss, memory, obs, zero_y)[0]
            hidden = memory.hidden
        else:
            hidden = memory = jax.vmap(cell)(memory, obs)
        return memory, jax.vmap(lambda h: head(cell.features(h)))(hidden)

    def rollout(s: PPOState, key):
        cell, head = eqx.combine(s.params, static)

        def one(carry, key):
            memory, obs, env_state, new_episode, episode_return = carry
            k_reset, k_act, k_env = jax.random.split(key, 3)
            memory = reset_where(new_episode, memory, fresh(cell, k_reset))
            before = memory
            memory, out = advance(cell, head, memory, obs)
            values, log_probs = jax.vmap(split_output)(out)
            action = jax.random.categorical(k_act, log_probs).astype(jnp.int32)
            log_prob = jnp.take_along_axis(log_probs, action[:, None], 1)[:, 0]
            keys = jax.random.split(k_env, config.envs)
            obs2, env_state, reward, done, _ = vstep(keys, env_state, action, env_params)
            reward = reward.astype(values.dtype)
            episode_return = episode_return + reward
            step = Transition(before, obs, new_episode, action, log_prob, values, reward, done)
            records = {
                "reward": reward,
                "done": done,
                "value": values,
                "episode_return": jnp.where(done, episode_return, 0.0),
            }
            carry = (memory, obs2, env_state, done, jnp.where(done, 0.0, episode_return))
            return carry, (step, records)

        carry = (s.memory, s.obs, s.env_state, s.new_episode, s.episode_return)
        keys = jax.random.split(key, config.rollout)
        carry, (steps, records) = lax.scan(one, carry, keys)
        memory, obs, env_state, new_episode, episode_return = carry
        # Bootstrap from the next observation without advancing the stored state.
        _, out = advance(cell, head, reset_where(new_episode, memory, fresh(cell, key)), obs)
        last_value = jnp.where(new_episode, 0.0, out[:, 0])
        s = s._replace(
            memory=memory,
            obs=obs,
            env_state=env_state,
            new_episode=new_episode,
            episode_return=episode_return,
        )
        return s, steps, last_value, records

    def minibatch_grads(params, batch, advantage, target):
        cell, head = eqx.combine(params, static)
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        y = jnp.stack(
            [
                batch.action.astype(advantage.dtype),
                batch.log_prob,
                advantage,
                target,
                batch.value,
            ],
            axis=-1,
        )
        if k is None:  # real time: one learner step from each stored state
            _, loss, grads = learner.step(cell, head, per_sample, batch.memory, batch.obs, y)
            return loss, grads

        def total(modules):  # sequences (B, k): BPTT from the stored first state
            c, h = modules

            def sequence(seq, ys):
                def body(hidden, inputs):
                    x, new_episode, y_t = inputs
                    hidden = reset_where(new_episode, hidden, c.init_state())
                    hidden = c(hidden, x)
                    return hidden, per_sample(h(c.features(hidden)), y_t)

                inputs = (seq.obs, seq.new_episode, ys)
                return jnp.mean(
                    lax.scan(body, jax.tree.map(lambda a: a[0], seq.memory), inputs)[1]
                )

            return jnp.mean(jax.vmap(sequence)(batch, y))

        return eqx.filter_value_and_grad(total)((cell, head))

    def update(s: PPOState, steps: Transition, last_value, key):
        advantages, targets = gae(
            steps.value, steps.reward, steps.done, last_value, gamma, config.gae_lambda
        )
        if k is None:  # samples are single steps
            data = jax.tree.map(
                lambda a: a.reshape(-1, *a.shape[2:]), (steps, advantages, targets)
            )
        else:  # samples are k-step sequences: (rollout/k * envs, k, ...)
            length = k

            def sequences(a):
                a = a.reshape(config.rollout // length, length, config.envs, *a.shape[2:])
                return jnp.swapaxes(a, 1, 2).reshape(-1, length, *a.shape[3:])

            data = jax.tree.map(sequences, (steps, advantages, targets))

        def epoch(carry, key):
            params, opt_state = carry
            order = jax.random.permutation(key, samples)
            shuffled = jax.tree.map(
                lambda a: a[order].reshape(config.minibatches, -1, *a.shape[1:]), data
            )

            def minibatch(carry, mb):
                params, opt_state = carry
                loss, grads = minibatch_grads(params, *mb)
                updates, opt_state = _standard(optimizer.update, grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            return lax.scan(minibatch, (params, opt_state), shuffled)

        keys = jax.random.split(key, config.epochs)
        (params, opt_state), _ = lax.scan(epoch, (s.params, s.opt_state), keys)
        return s._replace(params=params, opt_state=opt_state)

    def iteration(s: PPOState, _):
        key, k_roll, k_update = jax.random.split(jax.random.wrap_key_data(s.key), 3)
        s, steps, last_value, records = rollout(s, k_roll)
        s = update(s, steps, last_value, k_update)
        return s._replace(key=jax.random.key_data(key)), records

    def chunk(state: PPOState, iterations: int):
        state, records = lax.scan(iteration, state, None, length=iterations)
        return state, jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), records)

    def modules(state: PPOState):
        return eqx.combine(state.params, static)

    return Agent(
        init,
        chunk,
        config.rollout,
        config.envs,
        modules,
        gamma,
        parts={"rollout": rollout, "gradient": minibatch_grads, "gae": gae},
    )


def _no_loss(out: jax.Array, y: jax.Array) -> jax.Array:
    return 0.0 * out[0]


def _check_batched(memory: Any, envs: int, learner: Learner) -> None:
    for leaf in jax.tree.leaves(memory):
        if not leaf.shape or leaf.shape[0] != envs:
            raise UnsupportedCellError(
                f"ppo: learner {learner.name!r} keeps state shared by the batch (a PRNG key "
                "or counter), so its per-step states cannot be stored and replayed one "
                "transition at a time. Use diag_rtrl, rtrl or snap:n for real-time PPO, or "
                "tbptt:k."
            )
