"""Online training: it learns, it resumes exactly, and it refuses bad configurations."""

import json

import jax
import numpy as np
import pytest

from rtrlx.train import TrainConfig, TrainingError, read_metrics, train


@pytest.mark.slow  # 9 s
def test_rtrl_raises_the_copy_curriculum_level():
    config = TrainConfig(
        task="copy-curriculum", cell="rhn", learner="rtrl", hidden=16, steps=3000, lr=3e-3
    )
    result = train(config)
    assert result["metric"] == "T_"
    assert result["value"] >= 3.0  # it starts at T_ = 1


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_resume_gives_the_same_run_as_no_interruption(tmp_path):
    base = dict(
        task="copy",
        cell="gru",
        learner="kf_rtrl",
        hidden=6,
        batch=3,
        chunk=20,
        task_params={"pattern": 3, "delay": 2},
    )
    whole = train(TrainConfig(steps=80, **base), out=str(tmp_path / "whole"))
    train(TrainConfig(steps=40, **base), out=str(tmp_path / "split"))
    again = train(TrainConfig(steps=80, **base), out=str(tmp_path / "split"), resume=True)
    assert again["steps"] == 80
    from rtrlx._tree import keys_to_data
    from rtrlx.driver import load_checkpoint
    from rtrlx.train import build

    _, template = build(TrainConfig(steps=80, **base))
    a = load_checkpoint(str(tmp_path / "whole"), template)
    b = load_checkpoint(str(tmp_path / "split"), template)
    assert a[0] == b[0] == 80
    for x, y in zip(*map(jax.tree.leaves, keys_to_data((a[1], b[1]))), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [r["step"] for r in read_metrics(str(tmp_path / "split"))] == [20, 40, 60, 80]
    assert whole["metrics"]["accuracy"] == again["metrics"]["accuracy"]


def test_resume_refuses_a_different_config(tmp_path):
    config = TrainConfig(
        task="adding",
        cell="elman",
        learner="uoro",
        hidden=4,
        steps=20,
        batch=2,
        chunk=10,
        task_params={"length": 5},
    )
    train(config, out=str(tmp_path))
    other = TrainConfig(**{**config.__dict__, "learner": "kf_rtrl", "steps": 40})
    with pytest.raises(ValueError, match="learner: saved 'uoro', now 'kf_rtrl'"):
        train(other, out=str(tmp_path), resume=True)


def test_non_finite_loss_stops_with_the_step_and_learner(tmp_path):
    config = TrainConfig(
        task="adding",
        cell="elman",
        learner="rtrl",
        hidden=4,
        steps=200,
        batch=2,
        chunk=50,
        lr=1e12,
        optimizer="sgd",
        checkpoint_every=50,
        task_params={"length": 5},
    )
    with pytest.raises(TrainingError, match=r"rtrl on adding: the loss became non-finite"):
        train(config, out=str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["learner"] == "rtrl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "nope"}, "valid tasks: copy-curriculum"),
        ({"cell": "nope"}, "valid cells: elman"),
        ({"learner": "nope"}, "valid learners: bptt"),
        ({"learner": "bptt"}, "cannot train online"),
        ({"optimizer": "lion"}, "valid: adam, adam-tf1, sgd"),
        ({"task": "ptb-char", "learner": "tbptt:7"}, "multiple of the truncation 7"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"eval_every": -1}, "eval_every must be >= 0"),
        ({"checkpoint_every": -5}, "checkpoint_every must be >= 0"),
        ({"learner": "kf_rtrl", "cell": "lru"}, r"W @ \[h; x\]"),
        ({"layers": 2}, "use --cell deep-lru or deep-rtu"),
        ({"cell": "deep-lru", "learner": "snap:1"}, "unit.local"),
        ({"layout": "sideways"}, "valid: auto, batched, streams"),
        ({"learner": "rflo", "layout": "streams"}, "shares state across the streams"),
    ],
)
def test_bad_configs_name_the_fix(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change).validate()


def test_influence_balancing_truncation_goes_the_wrong_way():
    def final(learner):
        config = TrainConfig(
            task="influence-balancing",
            learner=learner,
            steps=2000,
            batch=1,
            lr=1e-5,
            optimizer="sgd",
            chunk=500,
        )
        return train(config)["metrics"]

    start = 0.5
    exact, truncated = final("rtrl"), final("tbptt:1")
    assert exact["theta"] < start and truncated["theta"] > start
    assert exact["unroll_loss"] < truncated["unroll_loss"]


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    config = TrainConfig(
        task="adding",
        cell="gru",
        learner="snap:1",
        hidden=4,
        steps=100,
        batch=2,
        chunk=20,
        task_params={"length": 10},
    )

    def interrupt(record):
        if record["step"] == 40:
            raise KeyboardInterrupt

    stopped = train(config, out=str(tmp_path / "a"), on_chunk=interrupt)
    assert stopped["interrupted"] and stopped["steps"] == 40
    assert json.loads((tmp_path / "a" / "result.json").read_text())["interrupted"]
    resumed = train(config, out=str(tmp_path / "a"), resume=True)
    whole = train(config, out=str(tmp_path / "b"))
    assert resumed["steps"] == 100
    assert resumed["metrics"]["mse"] == whole["metrics"]["mse"]
