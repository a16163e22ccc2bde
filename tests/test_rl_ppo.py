"""PPO and actor-critic choose what to do from a learner's typed fields, never its name: a
learner the RL code has never seen runs as truncated PPO when it truncates, and is refused by
the actor-critic when its gradients arrive late; truncated PPO is BPTT through each sequence,
episode resets included."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx
from rtrlx.rl.core import make_core
from rtrlx.rl.ppo import ppo_loss

ENV, ENV_PARAMS = rtrlx.rl.make("RepeatPreviousEasy")


def _cell(core, hidden=3):
    return lambda key: make_core(core, ENV.observation_size, hidden, key=key)


def _flat(tree):
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])


def _sequences(tree, k, envs):
    """Time-major ``(T, envs, ...)`` arrays as ``(T / k * envs, k, ...)`` sequences."""

    def cut(a):
        a = a.reshape(a.shape[0] // k, k, envs, *a.shape[2:])
        return jnp.swapaxes(a, 1, 2).reshape(-1, k, *a.shape[3:])

    return jax.tree.map(cut, tree)


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_a_new_truncating_learner_runs_as_truncated_ppo():
    learner = rtrlx.tbptt(4)._replace(name="my-trunc")
    config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), learner, config, 4)
    state = agent.init(jax.random.key(0))
    # Truncated PPO carries the core's hidden state only, not a learner's state.
    assert state.memory.shape == (2, 3)
    end, records = jax.jit(agent.chunk, static_argnums=1)(state, 2)
    assert records["reward"].shape == (16, 2)
    moved = _flat(end.params) - _flat(state.params)
    assert bool(jnp.all(jnp.isfinite(moved))) and float(jnp.abs(moved).max()) > 0
    with pytest.raises(ValueError, match="whole 4-step sequences"):
        rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), learner, rtrlx.rl.PPOConfig(rollout=6), 4)


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_truncated_ppo_is_bptt_through_each_sequence_with_episode_resets():
    """The gradient of 4-step sequences, one of which crosses an episode's end, is reverse
    mode through each from its stored first state, the state reset where the episode ends."""
    k, envs = 4, 2
    config = rtrlx.rl.PPOConfig(envs=envs, rollout=60, minibatches=2, epochs=1)
    learner = rtrlx.tbptt(k)._replace(name="my-trunc")
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), learner, config, 4)
    state, parts = agent.init(jax.random.key(1)), agent.parts
    assert parts is not None
    _, steps, last_value, _ = jax.jit(parts["rollout"])(state, jax.random.key(2))
    assert list(np.flatnonzero(np.asarray(steps.new_episode[:, 0]))) == [51]  # inside 48..51
    advantages, targets = parts["gae"](
        steps.value, steps.reward, steps.done, last_value, agent.gamma, config.gae_lambda
    )
    batch, advantages, targets = _sequences((steps, advantages, targets), k, envs)
    _, grads = jax.jit(parts["gradient"])(state.params, batch, advantages, targets)

    cell, head = agent.network(state)
    loss_fn = ppo_loss(config)
    normalised = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ys = jnp.stack(
        [batch.action.astype(normalised.dtype), batch.log_prob, normalised, targets, batch.value],
        -1,
    )

    def total(modules, resets):
        c, h = modules

        def sequence(start, xs, new_episode, ys):
            def body(hidden, inputs):
                x, reset, y = inputs
                hidden = jnp.where(reset & resets, c.init_state(), hidden)
                hidden = c(hidden, x)
                return hidden, loss_fn(h(c.features(hidden)), y)

            return jnp.mean(jax.lax.scan(body, start, (xs, new_episode, ys))[1])

        starts = batch.memory[:, 0]
        return jnp.mean(jax.vmap(sequence)(starts, batch.obs, batch.new_episode, ys))

    grad = eqx.filter_jit(eqx.filter_grad(total))
    reference = grad((cell, head), jnp.array(True))
    np.testing.assert_allclose(_flat(grads), _flat(reference), rtol=1e-7, atol=1e-12)
    without_reset = grad((cell, head), jnp.array(False))  # the reset matters to this gradient
    assert float(jnp.abs(_flat(reference[0]) - _flat(without_reset[0])).max()) > 1e-6


def test_ppo_dispatches_on_typed_fields_not_names():
    config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
    renamed = rtrlx.diag_rtrl()._replace(name="tbptt:4")  # a misleading name changes nothing
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("rtu"), renamed, config, 4)
    assert isinstance(agent.init(jax.random.key(0)).memory, rtrlx.learners.TraceState)
    shared = rtrlx.rtrl()._replace(name="my-shared", independent_streams=False)
    with pytest.raises(rtrlx.UnsupportedCellError, match="shared by the batch"):
        rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), shared, config, 4)
    # UORO keeps one key per stream, so its stored states replay one transition at a time.
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), rtrlx.uoro(), config, 4)
    assert agent.init(jax.random.key(0)).memory.key.shape == (2,)


@pytest.mark.parametrize(
    "learner",
    [
        rtrlx.rtrl()._replace(name="my-late", per_step_grads=False),
        rtrlx.tbptt(4)._replace(name="my-trunc"),
    ],
    ids=["late-rtrl", "renamed-tbptt"],
)
def test_actor_critic_refuses_a_learner_without_per_step_gradients(learner):
    with pytest.raises(rtrlx.UnsupportedCellError, match=r"'my-.*' gives no per-step gradient"):
        rtrlx.rl.actor_critic(ENV, ENV_PARAMS, _cell("gru"), learner)
    renamed = rtrlx.rtrl()._replace(name="tbptt:4")  # per-step gradients under any name
    rtrlx.rl.actor_critic(ENV, ENV_PARAMS, _cell("gru"), renamed)


@pytest.mark.slow
def test_real_time_ppo_learns_the_same_in_either_order_of_the_streams():
    config = rtrlx.rl.PPOConfig(envs=3, rollout=8, minibatches=2, epochs=2)
    params = {}
    for layout in ("batched", "streams"):
        agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), rtrlx.rtrl(), config, 4, layout)
        state, _ = agent.chunk(agent.init(jax.random.key(0)), 2)
        params[layout] = _flat(eqx.filter(state, eqx.is_inexact_array))
    np.testing.assert_allclose(params["streams"], params["batched"], rtol=1e-8, atol=1e-10)


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores
def test_the_rl_run_reports_its_order(tmp_path):
    from rtrlx.rl.run import RLConfig, train

    config = RLConfig(
        agent="ppo",
        core="gru",
        learner="rtrl",
        hidden=3,
        steps=64,
        seeds=1,
        chunks=1,
        agent_params={"envs": 2, "rollout": 8, "minibatches": 2},
        layout="streams",
    )
    summary = train(config)
    assert summary["records"][0]["layout"] == {
        "name": "streams",
        "reason": "asked for",
        "ms_per_step": {},
    }
