"""TensorFlow 1's Adam and the cell's gradient scale (the OK code's optimizer)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rtrlx.cli import main
from rtrlx.driver import config_changes, load_checkpoint
from rtrlx.optim import adam_tf1
from rtrlx.recipes import recipe
from rtrlx.train import TrainConfig, _optimizer, build


def _tf1_reference(grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """TensorFlow 1's AdamOptimizer, written out in float64 NumPy (its documented update)."""
    theta, m, v, out = np.zeros_like(grads[0]), 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        out.append(theta)
    return out


def _run(opt, grads):
    params = jnp.zeros(grads[0].shape, jnp.float64)
    state, out = opt.init(params), []
    for g in grads:
        with jax.numpy_dtype_promotion("standard"):  # optax mixes floats and int32 counts
            updates, state = opt.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params))
    return out


@pytest.fixture
def grads():
    rng = np.random.default_rng(0)  # float64: the tests run with jax_enable_x64
    # Gradients spanning 1e-9 to 1: where epsilon weighs and where it does not.
    return [rng.normal(size=6) * np.logspace(-9, 0, 6) for _ in range(30)]


def test_adam_tf1_is_tensorflow_1s_update(grads):
    got = _run(adam_tf1(1e-3), grads)
    for a, b in zip(got, _tf1_reference(grads, 1e-3), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)


def test_adam_tf1_differs_from_optax_only_through_epsilon(grads):
    tf1, ox = _run(adam_tf1(1e-3), grads), _run(optax.adam(1e-3), grads)
    # With the tiny gradients, epsilon's weight (31.6x at the first step) shows ...
    assert abs(tf1[0][0] - ox[0][0]) > 0.1 * abs(ox[0][0])
    # ... and without epsilon the two are one formula.
    tf1, ox = _run(adam_tf1(1e-3, eps=0.0), grads), _run(optax.adam(1e-3, eps=0.0), grads)
    for a, b in zip(tf1, ox, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_scaling_the_gradient_is_scaling_epsilon(grads):
    """Adam with gradient s * g is Adam with epsilon eps / s on g: why the OK code's
    1/batch recurrent gradient is an epsilon setting."""
    scaled = _run(adam_tf1(1e-3), [g / 32 for g in grads])
    for a, b in zip(scaled, _run(adam_tf1(1e-3, eps=32e-8), grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    unscaled = _run(adam_tf1(1e-3), grads)
    assert not np.allclose(scaled[0], unscaled[0], rtol=1e-3)


def test_cell_grad_scale_scales_the_cell_before_the_clip():
    params = ({"w": jnp.zeros(4)}, {"v": jnp.zeros(3)})
    grads = ({"w": jnp.full(4, 3.0)}, {"v": jnp.full(3, 5.0)})
    config = TrainConfig(optimizer="sgd", lr=1.0, cell_grad_scale=0.5)
    opt = _optimizer(config, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates[0]["w"], -1.5)
    np.testing.assert_allclose(updates[1]["v"], -5.0)
    # The clip measures the scaled gradient (norm 3 here): a clip at 4 leaves it alone.
    opt = _optimizer(dataclasses.replace(config, clip=4.0, clip_scope="cell"), params)
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates[0]["w"], -1.5)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_cell_grad_scale_names_the_fix(value):
    with pytest.raises(ValueError, match="cell_grad_scale must be a finite number > 0"):
        TrainConfig(cell_grad_scale=value).validate()


def test_a_run_saved_before_a_setting_existed_counts_as_its_default():
    saved = dataclasses.asdict(TrainConfig())
    del saved["cell_grad_scale"]
    assert config_changes(saved, TrainConfig()) == {}
    changed = config_changes(saved, TrainConfig(cell_grad_scale=0.5))
    assert changed == {"cell_grad_scale": (1.0, 0.5)}


def test_ok_ptb_version_2_is_the_codes_optimizer_and_version_1_stays():
    new, old = recipe("ok-ptb"), recipe("ok-ptb@1")
    assert (new.label, old.label) == ("ok-ptb@2", "ok-ptb@1")
    assert (new.config.optimizer, new.config.cell_grad_scale) == ("adam-tf1", 1 / 32)
    assert (old.config.optimizer, old.config.cell_grad_scale) == ("adam", 1.0)
    differ = config_changes(dataclasses.asdict(old.config), new.config)
    assert set(differ) == {"optimizer", "cell_grad_scale"}
    with pytest.raises(ValueError, match="earlier version kept for its runs: ok-ptb@1"):
        recipe("ok-ptb@3")


def test_adam_tf1_keeps_float32_under_strict_promotion():
    params = {"w": jnp.zeros(3, jnp.float32)}  # the tests run with x64 and strict promotion
    opt = adam_tf1(1e-3)
    updates, _ = jax.jit(opt.update)({"w": jnp.ones(3, jnp.float32)}, opt.init(params))
    assert updates["w"].dtype == jnp.float32


@pytest.mark.parametrize("change", [{}, {"clip": 1.0}, {"clip": 1.0, "clip_scope": "cell"}])
def test_runs_without_a_scale_keep_their_optimizer_state_as_before(change):
    """Checkpoints written before cell_grad_scale existed still load: same state tree."""
    params = ({"w": jnp.zeros(4)}, {"v": jnp.zeros(3)})
    config = dataclasses.replace(TrainConfig(), **change)
    adam = optax.adam(config.lr)
    if change:
        clip = optax.clip_by_global_norm(1.0)
        if change.get("clip_scope") == "cell":
            clip = optax.masked(clip, ({"w": True}, {"v": False}))
        adam = optax.chain(clip, adam)
    got = _optimizer(config, params).init(params)
    assert jax.tree.structure(got) == jax.tree.structure(adam.init(params))


@pytest.mark.slow  # three short trainings
def test_adam_tf1_and_the_scale_train_and_resume_exactly(tmp_path, capsys):
    argv = ["train", "--hidden", "4", "--chunk", "10", "--checkpoint-every", "10"]
    argv += ["--optimizer", "adam-tf1", "--cell-grad-scale", "0.5", "--clip", "1"]
    assert main([*argv, "--steps", "30", "--out", str(tmp_path / "straight")]) == 0
    assert main([*argv, "--steps", "20", "--out", str(tmp_path / "split")]) == 0
    assert main([*argv, "--steps", "30", "--out", str(tmp_path / "split"), "--resume"]) == 0
    capsys.readouterr()
    saved = json.loads((tmp_path / "split" / "config.json").read_text())
    assert (saved["optimizer"], saved["cell_grad_scale"]) == ("adam-tf1", 0.5)
    like = build(TrainConfig(**saved))[1]
    a = load_checkpoint(str(tmp_path / "straight"), like)[1]
    b = load_checkpoint(str(tmp_path / "split"), like)[1]
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
