"""A learner rtrlx has never seen plugs in by registering it: train, ppo, actor_critic, check
and the shared learner suite handle it from its typed fields, with no edit anywhere else.

The toy is a truncating learner, "window:k": truncated BPTT under another name, built as a new
factory would be (its own name, its typed fields).
"""

import jax
import pytest
import test_learners

import rtrlx
from rtrlx.check import run_check
from rtrlx.learners import LEARNERS, register
from rtrlx.rl.core import make_core
from rtrlx.train import TrainConfig, train


def window(k: int) -> rtrlx.Learner:
    """Backpropagate through windows of k steps (the toy)."""
    return rtrlx.tbptt(k)._replace(name=f"window:{k}")


@pytest.fixture(autouse=True, scope="module")
def _registered():
    register("window", window, "k, the window length")
    yield
    del LEARNERS["window"]


@pytest.mark.slow  # 11 s
def test_the_shared_learner_suite_takes_it():
    test_learners.test_streaming_equals_sequence_grads("window:4", "gru")
    test_learners.test_jits_once_and_keeps_state_shape("window:4", "gru")
    test_learners.test_state_size_does_not_grow_with_T("window:4", "gru")


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_check_holds_it_to_its_claim():
    rows = run_check(["window:20", "window:5"], ["gru"], hidden=4, steps=20)
    status = {r["learner"]: r["status"] for r in rows}
    assert status == {"window:20": "exact", "window:5": "approx"}


def test_train_uses_its_truncation():
    base = dict(task="adding", cell="gru", hidden=4, steps=40, batch=2, chunk=20)
    result = train(TrainConfig(learner="window:5", task_params={"length": 10}, **base))
    assert result["steps"] == 40
    # The task resets every 10 steps: a window of 3 would straddle a reset.
    with pytest.raises(ValueError, match="multiple of the truncation 3"):
        train(TrainConfig(learner="window:3", task_params={"length": 10}, **base))


def test_ppo_runs_it_as_truncated_ppo_and_actor_critic_refuses_it():
    env, params = rtrlx.rl.make("RepeatPreviousEasy")

    def cell(key):
        return make_core("gru", env.observation_size, 3, key=key)

    config = rtrlx.rl.PPOConfig(envs=2, rollout=8, minibatches=2, epochs=1)
    agent = rtrlx.rl.ppo(env, params, cell, rtrlx.learners.make("window:4"), config, 4)
    _, records = agent.chunk(agent.init(jax.random.key(0)), 1)
    assert records["reward"].shape == (8, 2)
    with pytest.raises(rtrlx.UnsupportedCellError, match="no per-step gradient"):
        rtrlx.rl.actor_critic(env, params, cell, rtrlx.learners.make("window:4"))
