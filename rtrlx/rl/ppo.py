"""PPO with a recurrent core, in two variants that share the rollout, GAE and the update.

The learner's typed fields choose the variant, once, in :func:`ppo`:

- :func:`realtime_ppo` (a learner with no ``truncation`` whose ``step`` streams and whose
  streams are independent: ``diag_rtrl`` for RTUs and LRUs, ``rtrl``, ``snap:1``, ``uoro``).
  During the rollout the learner runs forward with its traces; the state it had *before*
  each step (``h_{t-1}`` and the traces ``dh_{t-1}/dθ``) is stored with the transition.
  The loss of transition ``t`` is then differentiated through one learner step from that
  stored state, so its gradient reaches every earlier step through the trace, without
  replaying the sequence. The stored states are not recomputed after the parameters change
  (the RTU paper's *stale gradient* choice), so after the first minibatch the traces are
  those of the rollout's parameters; the advantages and value targets are also those of
  the rollout (stale targets).
- :func:`truncated_ppo` (a learner with ``truncation = k``, e.g. ``tbptt:k``). The rollout
  is cut into sequences of ``k`` steps; the learner's own whole-sequence path replays each
  from its stored first hidden state with the current parameters and backpropagates
  through it (the hidden state reset inside it where an episode ended): recurrent PPO as
  in common implementations.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jaxtyping import Array, Float

from .._errors import UnsupportedCellError
from .._tree import reset_where, with_standard_promotion
from .._types import State
from ..cells._base import AbstractCell
from ..learners import Learner, layout_step
from ._base import Environment
from .core import Agent, build_network, entropy, env_gamma, split_output


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
    memory: Any  # real time: the learner's state per env; truncated: the hidden state per env
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


class Variant(NamedTuple):
    """What one PPO variant decides; the rollout, GAE and the update are shared.

    Attributes:
        fresh: ``fresh(cell, key) -> memory``: the core's memory for ``config.envs`` fresh
            streams.
        advance: ``advance(cell, head, memory, obs) -> (memory, outputs)``: the core one
            step forward on every stream, and the head's ``[v, logits]`` per stream.
        samples: ``samples(a)``: a rollout array, time-major ``(rollout, envs, ...)``, as
            the ``(samples, ...)`` that minibatches are drawn from.
        gradient: ``gradient(cell, head, batch, y) -> (loss, (cell_grads, head_grads))``:
            the PPO loss of a minibatch of samples and its gradient; ``y`` holds each
            step's ``[action, log π_old, A, target, v_old]``.
    """

    fresh: Callable[[AbstractCell, Any], Any]
    advance: Callable[..., tuple[Any, jax.Array]]
    samples: Callable[[jax.Array], jax.Array]
    gradient: Callable[..., tuple[jax.Array, Any]]


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


def loss_targets(batch: Transition, advantage: jax.Array, target: jax.Array) -> jax.Array:
    """The ``y`` of :func:`ppo_loss` for every sample, advantages normalised over the batch."""
    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    columns = [batch.action.astype(advantage.dtype), batch.log_prob, advantage, target]
    return jnp.stack([*columns, batch.value], axis=-1)


def ppo(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    learner: Learner,
    config: PPOConfig = PPOConfig(),
    head_width: int = 64,
    layout: str = "batched",
) -> Agent:
    """PPO whose recurrent core learns in real time (RTRL) or by truncated BPTT.

    :func:`truncated_ppo` when the learner truncates (``learner.truncation`` is set, as
    for ``tbptt:k``), else :func:`realtime_ppo`.

    Args:
        env: an :class:`rtrlx.rl.Environment`.
        env_params: its parameters.
        cell_factory: ``cell_factory(key) -> cell``, the recurrent core.
        learner: ``tbptt:k`` (or any learner with ``truncation = k``) for recurrent PPO
            over sequences of ``k`` steps, or a streaming learner whose traces give
            real-time gradients (``diag_rtrl``, ``rtrl``, ``snap:1``).
        config: hyperparameters.
        head_width: hidden width of the value and policy heads.
        layout: the order of the streams in the real-time learner's batched steps,
            ``"batched"`` or ``"streams"`` (:func:`rtrlx.learners.streams_step`; see
            :func:`rtrlx.learners.choose_layout`). Truncated PPO ignores it.

    Returns:
        An :class:`Agent`; an iteration is one rollout and update, ``config.rollout``
        steps of ``config.envs`` streams. Hidden states and traces are reset where an
        episode ends.

    Raises:
        ValueError: when the rollout does not split into the minibatches (or sequences).
        UnsupportedCellError: for a learner without a streaming step, or one whose streams
            share state (a PRNG key or counter).

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
    if learner.truncation is not None:
        return truncated_ppo(env, env_params, cell_factory, learner, config, head_width)
    return realtime_ppo(env, env_params, cell_factory, learner, config, head_width, layout)


def realtime_ppo(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    learner: Learner,
    config: PPOConfig = PPOConfig(),
    head_width: int = 64,
    layout: str = "batched",
) -> Agent:
    """Real-time PPO: each transition's loss through one learner step from its stored state.

    Args and Returns as :func:`ppo`; ``learner`` streams and its streams are independent.

    Raises:
        UnsupportedCellError: for a learner that cannot stream, or whose streams share
            state (its per-step states cannot be stored and replayed one at a time).
        ValueError: when ``rollout * envs`` does not split into the minibatches.
    """
    if not learner.online:
        raise UnsupportedCellError(
            f"ppo: learner {learner.name!r} cannot stream. Use tbptt:k for recurrent PPO "
            "over k-step sequences, or a streaming learner (diag_rtrl, rtrl, snap:1)."
        )
    if not learner.independent_streams:
        raise UnsupportedCellError(
            f"ppo: learner {learner.name!r} keeps state shared by the batch (a PRNG key "
            "or counter), so its per-step states cannot be stored and replayed one "
            "transition at a time. Use diag_rtrl, rtrl or snap:n for real-time PPO, or "
            "tbptt:k (a learner whose streams share nothing declares independent_streams)."
        )
    if (config.rollout * config.envs) % config.minibatches:
        raise _split_error(config, "")
    per_sample = ppo_loss(config)
    step = layout_step(learner, layout)

    def fresh(cell, key):
        return learner.init(cell, key=key, batch_size=config.envs)

    def advance(cell, head, memory, obs):
        zero_y = jnp.zeros(config.envs, obs.dtype)
        memory = step(cell, head, _no_loss, memory, obs, zero_y)[0]
        return memory, _outputs(cell, head, memory.hidden)

    def samples(a):  # every step of every env is a sample
        return a.reshape(-1, *a.shape[2:])

    def gradient(cell, head, batch, y):
        _, loss, grads = step(cell, head, per_sample, batch.memory, batch.obs, y)
        return loss, grads

    variant = Variant(fresh, advance, samples, gradient)
    return _agent(env, env_params, cell_factory, config, head_width, variant)


def truncated_ppo(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    learner: Learner,
    config: PPOConfig = PPOConfig(),
    head_width: int = 64,
) -> Agent:
    """Truncated-BPTT PPO: ``k``-step sequences replayed by the learner's sequence path.

    Each sequence is run through ``learner.sequence`` on the core wrapped as
    :class:`Resumed`, which starts from the sequence's stored first hidden state and
    restarts where an episode began; its loss is PPO's per-step loss, averaged over the
    steps and the sequences of a minibatch.

    Args and Returns as :func:`ppo`; ``learner.truncation`` is the sequence length ``k``.

    Raises:
        UnsupportedCellError: for a learner without a truncation or a sequence path.
        ValueError: when the rollout does not split into whole ``k``-step sequences and
            those into the minibatches.
    """
    k, sequence = learner.truncation, learner.sequence
    if k is None or sequence is None:
        raise UnsupportedCellError(
            f"ppo: learner {learner.name!r} has no truncation and whole-sequence path, so "
            "truncated-BPTT PPO cannot replay k-step sequences with it. Use tbptt:k."
        )
    if config.rollout % k or ((config.rollout // k) * config.envs) % config.minibatches:
        raise _split_error(config, f" of whole {k}-step sequences")
    per_sample = ppo_loss(config)

    def fresh(cell, key):
        del key
        return jax.tree.map(
            lambda a: jnp.broadcast_to(a, (config.envs, *a.shape)), cell.init_state()
        )

    def advance(cell, head, memory, obs):
        hidden = jax.vmap(cell)(memory, obs)
        return hidden, _outputs(cell, head, hidden)

    def samples(a):  # (rollout, envs, ...) -> (rollout / k * envs, k, ...)
        a = a.reshape(config.rollout // k, k, config.envs, *a.shape[2:])
        return jnp.swapaxes(a, 1, 2).reshape(-1, k, *a.shape[3:])

    def gradient(cell, head, batch, y):
        def one(start, obs, new_episode, ys):
            xs = jnp.concatenate([obs, new_episode[:, None].astype(obs.dtype)], axis=-1)
            result = sequence(Resumed(cell, start), head, per_sample, xs, ys)
            if result is None:
                raise UnsupportedCellError(
                    f"ppo: learner {learner.name!r} has no whole-sequence path for "
                    f"{type(cell).__name__}, so truncated-BPTT PPO cannot use it."
                )
            loss, (g_resumed, g_head) = result
            return loss, (g_resumed.cell, g_head)

        starts = jax.tree.map(lambda a: a[:, 0], batch.memory)
        losses, grads = jax.vmap(one)(starts, batch.obs, batch.new_episode, y)
        # The sequence path sums over the k steps: PPO averages over steps and sequences.
        return jnp.mean(losses) / k, jax.tree.map(lambda g: jnp.mean(g, axis=0) / k, grads)

    variant = Variant(fresh, advance, samples, gradient)
    return _agent(env, env_params, cell_factory, config, head_width, variant)


class Resumed(AbstractCell):
    """A core resumed from a stored state, restarting where an episode begins.

    Its input is ``[obs, new_episode]``: where the last entry is 1 the core's state is reset
    to ``cell.init_state()`` before the step (purejaxrl's resetting RNN). Its initial state
    is ``start``, held out of the gradient (it is data from the rollout, and every truncated
    learner cuts the graph at a sequence's first step anyway).

    Attributes:
        cell: the recurrent core.
        start: the core's state before the sequence's first step.
    """

    cell: AbstractCell
    start: State

    # Declares no structure a learner could exploit: the wrapped core's is not checked here.
    unit_local: ClassVar[bool] = False

    def __init__(self, cell: AbstractCell, start: State):
        self.cell, self.start = cell, start

    @property
    def input_size(self) -> int:
        """The core's input and the reset flag."""
        return self.cell.input_size + 1

    @property
    def hidden_size(self) -> int:
        """The core's hidden size."""
        return self.cell.hidden_size

    @property
    def output_size(self) -> int:
        """The core's feature length."""
        return self.cell.output_size

    def init_state(self) -> State:
        """The stored state the sequence starts from."""
        return lax.stop_gradient(self.start)

    def __call__(self, state: State, x: Float[Array, " input"]) -> State:
        """One step of the core on ``x[:-1]``, from a fresh state where ``x[-1]`` is 1."""
        state = reset_where(x[-1] > 0.5, state, self.cell.init_state())
        return self.cell(state, x[:-1])

    def features(self, state: State) -> Float[Array, " output"]:
        """The core's features."""
        return self.cell.features(state)


def _agent(
    env: Environment,
    env_params: Any,
    cell_factory: Any,
    config: PPOConfig,
    head_width: int,
    variant: Variant,
) -> Agent:
    """The PPO agent around one :class:`Variant`: the shared rollout, GAE and update."""
    gamma = env_gamma(env_params, config.gamma)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr, eps=1e-5)
    )
    static = eqx.partition(
        build_network(cell_factory, env, head_width, jax.random.key(0)), eqx.is_inexact_array
    )[1]

    def init(key):
        k_net, k_env, k_run = jax.random.split(key, 3)
        cell, head = build_network(cell_factory, env, head_width, k_net)
        params = eqx.filter((cell, head), eqx.is_inexact_array)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, config.envs), env_params
        )
        return PPOState(
            params=params,
            opt_state=optimizer.init(params),
            memory=variant.fresh(cell, k_net),
            obs=obs,
            env_state=env_state,
            new_episode=jnp.zeros(config.envs, bool),
            episode_return=jnp.zeros(config.envs, obs.dtype),
            key=jax.random.key_data(k_run),
        )

    def gradient(params, batch, advantage, target):
        cell, head = eqx.combine(params, static)
        return variant.gradient(cell, head, batch, loss_targets(batch, advantage, target))

    rollout = make_rollout(env, env_params, config, static, variant)
    update = make_update(config, optimizer, gamma, variant.samples, gradient)

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

    parts = {"rollout": rollout, "gradient": gradient, "gae": gae}
    return Agent(init, chunk, config.rollout, config.envs, modules, gamma, parts=parts)


def make_rollout(
    env: Environment, env_params: Any, config: PPOConfig, static: Any, variant: Variant
) -> Callable:
    """The shared rollout: ``config.rollout`` steps of every env, each with its memory.

    Returns:
        ``rollout(state, key) -> (state, steps, last_value, records)``; each of ``steps``
        stores the core's memory before it, and ``last_value`` bootstraps from the next
        observation without advancing the stored memory (0 where it starts an episode).
    """
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(s: PPOState, key):
        cell, head = eqx.combine(s.params, static)

        def one(carry, key):
            memory, obs, env_state, new_episode, episode_return = carry
            k_reset, k_act, k_env = jax.random.split(key, 3)
            memory = reset_where(new_episode, memory, variant.fresh(cell, k_reset))
            before = memory
            memory, out = variant.advance(cell, head, memory, obs)
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
        carry, (steps, records) = lax.scan(one, carry, jax.random.split(key, config.rollout))
        memory, obs, env_state, new_episode, episode_return = carry
        restarted = reset_where(new_episode, memory, variant.fresh(cell, key))
        _, out = variant.advance(cell, head, restarted, obs)
        last_value = jnp.where(new_episode, 0.0, out[:, 0])
        s = s._replace(
            memory=memory,
            obs=obs,
            env_state=env_state,
            new_episode=new_episode,
            episode_return=episode_return,
        )
        return s, steps, last_value, records

    return rollout


def make_update(
    config: PPOConfig,
    optimizer: optax.GradientTransformation,
    gamma: float,
    samples: Callable[[jax.Array], jax.Array],
    gradient: Callable[..., tuple[jax.Array, Any]],
) -> Callable:
    """The shared update: GAE, then epochs of shuffled minibatches of the clipped loss.

    Args:
        config: the epochs and minibatches.
        optimizer: the optax optimiser.
        gamma: the discount.
        samples: the variant's ``samples`` (see :class:`Variant`).
        gradient: ``gradient(params, batch, advantage, target) -> (loss, grads)``.

    Returns:
        ``update(state, steps, last_value, key) -> state``.
    """

    def minibatch(carry, batch):
        params, opt_state = carry
        loss, grads = gradient(params, *batch)
        updates, opt_state = with_standard_promotion(optimizer.update, grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def update(s: PPOState, steps: Transition, last_value, key):
        advantages, targets = gae(
            steps.value, steps.reward, steps.done, last_value, gamma, config.gae_lambda
        )
        data = jax.tree.map(samples, (steps, advantages, targets))
        count = jax.tree.leaves(data)[0].shape[0]

        def epoch(carry, key):
            order = jax.random.permutation(key, count)
            shuffled = jax.tree.map(
                lambda a: a[order].reshape(config.minibatches, -1, *a.shape[1:]), data
            )
            return lax.scan(minibatch, carry, shuffled)

        keys = jax.random.split(key, config.epochs)
        (params, opt_state), _ = lax.scan(epoch, (s.params, s.opt_state), keys)
        return s._replace(params=params, opt_state=opt_state)

    return update


def _outputs(cell: AbstractCell, head: Any, hidden: Any) -> jax.Array:
    """The head's ``[v, logits]`` on every stream's hidden state."""
    return jax.vmap(lambda h: head(cell.features(h)))(hidden)


def _no_loss(out: jax.Array, y: jax.Array) -> jax.Array:
    return 0.0 * out[0]


def _split_error(config: PPOConfig, what: str) -> ValueError:
    return ValueError(
        f"ppo: a rollout of {config.rollout} steps x {config.envs} envs must split into "
        f"{config.minibatches} minibatches{what}; change --rollout, --envs or --minibatches."
    )
