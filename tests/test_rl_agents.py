"""The RL agents: real-time PPO's gradient is exact before any update, resets clear every
trace, the online actor-critic learns RepeatPrevious, agents compile once, and the CLI."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx
import rtrlx.cli
from rtrlx.rl.core import make_core, recurrent_params, reset_where, width_for
from rtrlx.rl.ppo import ppo_loss
from rtrlx.rl.run import RLConfig, train

ENV, ENV_PARAMS = rtrlx.rl.make("RepeatPreviousEasy")


def _cell(core, hidden=3):
    return lambda key: make_core(core, ENV.observation_size, hidden, key=key)


def _flat(tree):
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])


@pytest.mark.parametrize(
    ("core", "learner"),
    [
        pytest.param("rtu-nonlinear", "diag_rtrl", marks=pytest.mark.slow),  # 20 s
        pytest.param("lru", "diag_rtrl", marks=pytest.mark.slow),  # 17 s
        pytest.param("gru", "rtrl", marks=pytest.mark.slow),  # 14 s
    ],
)
def test_realtime_ppo_gradient_equals_bptt(core, learner):
    """Before the parameters move, the loss of every stored transition differentiated through
    one learner step from its stored traces is BPTT's gradient through the whole episode."""
    rollout, envs = 24, 2  # shorter than an episode (51 steps): no reset inside
    config = rtrlx.rl.PPOConfig(envs=envs, rollout=rollout, minibatches=1, epochs=1)
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell(core), rtrlx.learners.make(learner), config, 4)
    state = agent.init(jax.random.key(1))
    _, steps, last_value, _ = jax.jit(agent.parts["rollout"])(state, jax.random.key(2))
    advantages, targets = agent.parts["gae"](
        steps.value, steps.reward, steps.done, last_value, agent.gamma, config.gae_lambda
    )
    flat = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), (steps, advantages, targets))
    _, grads = jax.jit(agent.parts["gradient"])(state.params, *flat)

    # The same loss, differentiated by reverse mode through the unrolled episode.
    cell, head = agent.network(state)
    loss_fn = ppo_loss(config)
    normalised = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ys = jnp.stack(
        [steps.action.astype(normalised.dtype), steps.log_prob, normalised, targets, steps.value],
        -1,
    )

    def total(modules):
        c, h = modules

        def episode(xs, ys):
            def body(hidden, xy):
                hidden = c(hidden, xy[0])
                return hidden, loss_fn(h(c.features(hidden)), xy[1])

            return jax.lax.scan(body, c.init_state(), (xs, ys))[1]

        return jnp.mean(jax.vmap(episode, in_axes=(1, 1))(steps.obs, ys))

    reference = eqx.filter_jit(eqx.filter_grad(total))((cell, head))
    np.testing.assert_allclose(_flat(grads), _flat(reference), rtol=1e-7, atol=1e-12)
    assert float(jnp.abs(_flat(grads[0])).max()) > 1e-6  # the core gets a gradient

    # Truncated-BPTT PPO with one sequence per rollout is the same gradient.
    k_agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell(core), rtrlx.tbptt(rollout), config, 4)
    k_state = k_agent.init(jax.random.key(1))
    _, k_steps, k_last, _ = jax.jit(k_agent.parts["rollout"])(k_state, jax.random.key(2))
    k_adv, k_targets = k_agent.parts["gae"](
        k_steps.value, k_steps.reward, k_steps.done, k_last, agent.gamma, config.gae_lambda
    )
    sequences = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), (k_steps, k_adv, k_targets))
    _, k_grads = jax.jit(k_agent.parts["gradient"])(k_state.params, *sequences)
    np.testing.assert_allclose(_flat(k_grads), _flat(reference), rtol=1e-7, atol=1e-12)


@pytest.mark.slow  # 11 s
def test_ppo_rollout_resets_memory_at_episode_ends():
    """The stored state after an episode's last step is the fresh one: hidden and traces."""
    config = rtrlx.rl.PPOConfig(envs=2, rollout=60, minibatches=2, epochs=1)
    learner = rtrlx.diag_rtrl()
    agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("rtu-nonlinear"), learner, config, 4)
    state = agent.init(jax.random.key(0))
    _, steps, _, _ = agent.parts["rollout"](state, jax.random.key(1))
    fresh = learner.init(agent.network(state)[0], batch_size=2)
    starts = np.flatnonzero(np.asarray(steps.new_episode[:, 0]))
    assert list(starts) == [51]  # RepeatPrevious-Easy: 51 steps per episode
    at_start = jax.tree.map(lambda a: a[51], steps.memory)
    before = jax.tree.map(lambda a: a[50], steps.memory)
    for got, want, old in zip(*map(jax.tree.leaves, (at_start, fresh, before)), strict=True):
        np.testing.assert_array_equal(got, want)
        assert float(jnp.abs(old).max()) > 0  # there was something to clear


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_actor_critic_resets_memory_and_eligibility_trace():
    learner = rtrlx.diag_rtrl()
    agent = rtrlx.rl.actor_critic(ENV, ENV_PARAMS, _cell("lru"), learner, head_width=4)
    chunk = jax.jit(agent.chunk, static_argnums=1)
    end, _ = chunk(agent.init(jax.random.key(0)), 51)
    assert bool(end.new_episode)
    assert float(jnp.abs(_flat(end.trace)).max()) > 0
    after, _ = chunk(end, 1)
    cell, head = agent.network(end)
    fresh = learner.init(cell)
    memory = learner.step(cell, head, lambda out, y: out[0], fresh, end.obs, jnp.zeros(()))[0]
    for got, want in zip(*map(jax.tree.leaves, (after.memory, memory)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)

    def score(action):  # what the trace restarts from: this step's gradient only
        def loss(out, y):
            return out[0] + jax.nn.log_softmax(out[1:])[action]

        return _flat(learner.step(cell, head, loss, fresh, end.obs, jnp.zeros(()))[2])

    trace = _flat(after.trace)
    assert any(np.allclose(trace, score(a), rtol=1e-10) for a in range(ENV.num_actions))


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_actor_critic_learns_repeat_previous():
    """A short online run beats the random policy's return by a wide margin."""
    random_return = (1 / 4 - 3 / 4) * 47 / 48  # 47 rewarded steps of ±1/48
    summary = train(
        RLConfig(
            env="RepeatPreviousEasy",
            core="lru",
            hidden=64,
            steps=10_000,
            seeds=2,
            chunks=5,
            agent_params={"lr": 3e-3},
        )
    )
    final = [r["final_return"] for r in summary["records"]]
    assert min(final) > random_return + 0.3, final


@pytest.mark.slow  # 17 s for PPO
@pytest.mark.parametrize("agent_name", ["ac", "ppo"])
def test_agents_compile_once(agent_name):
    traces = []
    learner = rtrlx.diag_rtrl()
    if agent_name == "ac":
        agent = rtrlx.rl.actor_critic(ENV, ENV_PARAMS, _cell("rtu"), learner, head_width=4)
    else:
        config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
        agent = rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("rtu"), learner, config, 4)

    def chunk(state):
        traces.append(1)
        return agent.chunk(state, 3)

    run = jax.jit(jax.vmap(chunk))
    state = jax.vmap(agent.init)(jax.random.split(jax.random.key(0), 2))
    for _ in range(3):
        state, _ = run(state)
    assert len(traces) == 1


def test_agents_refuse_learners_they_cannot_use():
    with pytest.raises(rtrlx.UnsupportedCellError, match="per-step gradient"):
        rtrlx.rl.actor_critic(ENV, ENV_PARAMS, _cell("gru"), rtrlx.tbptt(4))
    config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
    with pytest.raises(rtrlx.UnsupportedCellError, match="shared by the batch"):
        rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), rtrlx.rflo(), config, 4)
    with pytest.raises(rtrlx.UnsupportedCellError, match="cannot stream"):
        rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), rtrlx.bptt(), config, 4)
    with pytest.raises(ValueError, match="minibatches"):
        rtrlx.rl.ppo(ENV, ENV_PARAMS, _cell("gru"), rtrlx.tbptt(5), config, 4)


@pytest.mark.parametrize("core", ["rtu", "rtu-nonlinear", "lru", "gru"])
def test_width_for_fills_the_budget(core):
    n = width_for(core, 4, 2000)
    assert recurrent_params(core, 4, n) <= 2000 < recurrent_params(core, 4, n + 1)


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_rl_cli_writes_summary_curve_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["rl", "--env", "RepeatPreviousEasy", "--core", "lru", "--hidden", "4"]
    args += ["--steps", "120", "--seeds", "2", "--chunks", "2", "--out", str(out)]
    config = RLConfig(core="lru", hidden=4, steps=120, seeds=2, chunks=2)

    def interrupt(record):
        raise KeyboardInterrupt

    stopped = train(config, out=str(out), on_chunk=interrupt)  # Ctrl-C after chunk 1
    assert stopped["interrupted"] and len(stopped["chunks"]) == 1
    first = (out / "curves.jsonl").read_text()
    assert rtrlx.cli.main([*args, "--resume"]) == 0
    assert (out / "curves.jsonl").read_text().startswith(first)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["seed"] for r in summary["records"]] == [0, 1]
    for record in summary["records"]:
        assert record["env"] == "RepeatPreviousEasy" and record["core"] == "lru"
        assert record["agent"] == "ac" and record["learner"] == "diag_rtrl"
        assert record["steps"] == 120 and record["steps_per_second"] > 0
        assert "final_return" in record
    assert (out / "curve.png").stat().st_size > 1000
    assert json.loads(capsys.readouterr().out)[0]["seed"] == 0
    assert len((out / "curves.jsonl").read_text().splitlines()) == 2
    # Seeds in one vmap are independent: seed 1 alone runs as it did beside seed 0, and the
    # interrupted, resumed run is the uninterrupted one.
    alone = train(RLConfig(core="lru", hidden=4, steps=120, seeds=1, seed=1, chunks=2))
    for got, want in zip(summary["chunks"], alone["chunks"], strict=True):
        assert got["episodes"][1] == want["episodes"][0]
        np.testing.assert_allclose(got["return_sum"][1], want["return_sum"][0], rtol=1e-9)
    assert rtrlx.cli.main([*args[:-2], "--agent", "dqn"]) == 2
    assert "valid agents: ac, ppo" in capsys.readouterr().err


def test_episode_resets_keep_the_learners_prng_keys_running():
    state = {"h": jnp.ones((2, 3)), "key": jax.random.split(jax.random.key(0), 2)}
    fresh = {"h": jnp.zeros((2, 3)), "key": jax.random.split(jax.random.key(1), 2)}
    out = reset_where(jnp.array([True, False]), state, fresh)
    np.testing.assert_array_equal(out["h"], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(
        jax.random.key_data(out["key"]), jax.random.key_data(state["key"])
    )
