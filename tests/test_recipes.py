"""The papers' recipes, the copy-ok task and the training options they need."""

import dataclasses
import inspect
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rtrlx
from rtrlx.cli import main
from rtrlx.driver import RunError
from rtrlx.recipes import OLDER, RECIPES, best_validation, departures, plot_runs, recipe
from rtrlx.train import TrainConfig, build, train


def _settings(doc: str) -> dict[str, str]:
    """The ``field: value`` lines of a docstring's ``Settings:`` block."""
    lines = inspect.cleandoc(doc).splitlines()
    start = lines.index("Settings:") + 1
    out = {}
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        name, _, value = line.strip().partition(": ")
        out[name] = value
    return out


@pytest.mark.parametrize(
    "name", [*RECIPES, *(f"{base}@{v}" for base, kept in OLDER.items() for v in kept)]
)
def test_recipe_config_is_what_its_docstring_says(name):
    r = recipe(name)
    settings = _settings(r.doc)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(settings) <= fields
    # Every setting that differs from TrainConfig's default is stated.
    differs = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(r.config, f.name) != getattr(TrainConfig(), f.name)
    }
    assert differs <= set(settings)
    for key, text in settings.items():
        value = getattr(r.config, key)
        if isinstance(value, dict):
            assert value == json.loads(text.replace("'", '"')), key
        elif isinstance(value, float):
            assert math.isclose(value, float(text), rel_tol=1e-15), key
        else:
            assert str(value) == text, key
    r.config.validate()


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_recipe_runs_end_to_end_on_a_tiny_budget(tmp_path):
    config = dataclasses.replace(recipe("ok-copy").config, hidden=8, steps=60, chunk=30)
    result = train(config, out=str(tmp_path))
    assert result["steps"] == 60 and result["metric"] == "T_"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [30, 60]
    assert records[1]["wall_seconds"] > records[0]["wall_seconds"] > 0


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_cli_recipe_with_overrides(tmp_path, capsys):
    argv = ["train", "--recipe", "ok-copy@1", "--hidden", "8", "--steps", "40", "--chunk", "20"]
    assert main([*argv, "--learner", "kf_rtrl", "--out", str(tmp_path)]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["recipe"] == "ok-copy@1"
    assert (config["hidden"], config["learner"], config["clip_scope"]) == (8, "kf_rtrl", "cell")
    assert config["batch"] == 16 and config["init_scale"] == 0.01


@pytest.mark.parametrize(
    ("name", "message"),
    [("nope", "unknown recipe 'nope'; recipes: ok-copy"), ("ok-copy@9", "version 1")],
)
def test_bad_recipe_names_the_fix(name, message, capsys):
    assert main(["train", "--recipe", name]) == 2
    assert message in capsys.readouterr().err
    assert main(["recipes", name]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plot", "x.png"], "--plot draws the runs of one recipe: name it"),
        (["ok-copy", "--runs", "a,b"], "--runs are drawn into a --plot: add one"),
    ],
)
def test_recipes_flags_that_would_be_ignored_are_refused(argv, message, capsys, tmp_path):
    assert main(["recipes", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # three short trainings
def test_a_resumed_recipe_run_keeps_its_label_whichever_flags_resume_it(tmp_path):
    config = dataclasses.replace(
        recipe("ok-copy").config, learner="uoro", hidden=4, steps=20, chunk=10, recipe="ok-copy@1"
    )
    train(config, out=str(tmp_path))
    # The same settings given as flags, without --recipe (or under a later version's label).
    for label, steps in (("", 30), ("ok-copy@2", 40)):
        again = dataclasses.replace(config, recipe=label, steps=steps)
        assert train(again, out=str(tmp_path), resume=True)["steps"] == steps
        assert json.loads((tmp_path / "config.json").read_text())["recipe"] == "ok-copy@1"
    with pytest.raises(RunError, match="hidden: saved 4, now 8"):  # settings are still checked
        train(dataclasses.replace(config, hidden=8, steps=50), out=str(tmp_path), resume=True)


def test_departures_name_every_setting_a_run_changed():
    found = recipe("ok-ptb")
    config = json.loads(json.dumps(dataclasses.asdict(found.config)))  # as config.json holds it
    assert departures(config, found) == ""
    config |= {"learner": "tbptt:25", "seed": 3, "steps": 9, "checkpoint_every": 1, "layout": "x"}
    assert departures(config, found) == ""  # how it is run, not what it trains
    config |= {"clip": 1.0, "lr": 1e-3, "hidden": 128}
    config["task_params"] = {**config["task_params"], "reset": 50}
    assert departures(config, found) == ", n 128, lr 0.001, clip 1, task_params.reset 50"


def test_best_validation_is_the_lowest_with_its_own_test_figure():
    records = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "valid_bpc": 2.5, "test_bpc": 2.4},
        {"step": 3, "valid_bpc": 2.2, "test_bpc": 2.3},
        {"step": 4, "valid_bpc": 2.3, "test_bpc": 2.1},
    ]
    assert best_validation(records)["test_bpc"] == 2.3
    assert best_validation(records[:1]) is None


def test_recipes_command_lists_and_shows(capsys):
    assert main(["recipes"]) == 0
    assert "ok-copy@1" in capsys.readouterr().out
    assert main(["recipes", "ok-copy"]) == 0
    out = capsys.readouterr().out
    assert "Where rtrlx differs" in out and "2e+06, 38, 41.8, 45" in out


def _episode(task, params, level, steps, seed=0):
    state = task.init(params, jax.random.key(seed))
    xs, ys, restarts = [], [], []
    for t in range(steps):
        restarts.append(bool(task.restarts(params, state)))
        state, x, y = task.step(params, level, state, jax.random.key(100 + t))
        xs.append(int(jnp.argmax(x)))
        ys.append(int(jnp.argmax(y)))
    return xs, ys, restarts


def test_copy_ok_episodes_are_the_official_format():
    """Input [2, b1..bL, 3 x (L+1)], target [3 x (L+1), 2, b1..bL], a restart per episode."""
    task, params = rtrlx.tasks.make("copy-ok", spread=0)
    for length in (1, 3, 6):
        xs, ys, restarts = _episode(task, params, jnp.asarray(float(length)), 3 * (2 * length + 2))
        for e in range(3):
            x = xs[e * (2 * length + 2) : (e + 1) * (2 * length + 2)]
            y = ys[e * (2 * length + 2) : (e + 1) * (2 * length + 2)]
            bits = x[1 : length + 1]
            assert set(bits) <= {0, 1}
            assert x == [2, *bits, *[3] * (length + 1)]
            assert y == [*[3] * (length + 1), 2, *bits]
        assert [t for t, r in enumerate(restarts) if r] == [0, 2 * length + 2, 4 * length + 4]
    never, off = rtrlx.tasks.make("copy-ok", restart_streams=0)
    assert never.restarts(off, never.init(off, jax.random.key(0))) is None


def test_copy_ok_lengths_follow_the_curriculum():
    """Each string has length max(1, T_ - U{0..4}): at T_ = 3 the lengths 1, 2, 3 occur."""
    task, params = rtrlx.tasks.make("copy-ok")
    state = task.init(params, jax.random.key(0))
    seen = set()
    for t in range(400):
        state, _, _ = task.step(params, jnp.asarray(3.0), state, jax.random.key(t))
        seen.add(int(state.length))
    assert seen == {1, 2, 3}


def test_copy_ok_curriculum_rule():
    """T_ grows below 0.15 bits per step, and the running loss restarts at 0.3."""
    task, params = rtrlx.tasks.make("copy-ok")
    level = jnp.asarray(5.0)
    same, running = task.next_level(params, level, jnp.array([0.16, 1.0, 0.0, 0.0]))
    assert float(same) == 5.0 and float(running[0]) == pytest.approx(0.16)
    up, running = task.next_level(params, level, jnp.array([0.149, 1.0, 0.0, 0.0]))
    assert float(up) == 6.0 and running.tolist() == pytest.approx([0.3, 1.0, 0.0, 0.0])


def test_copy_ok_running_loss_is_the_batch_mean():
    """The running statistic averages the batch (the official EMA of the batch-mean loss),
    so its first step from 1.0 moves by 0.001 x (batch-mean bits - 1)."""
    config = TrainConfig(task="copy-ok", cell="rhn", learner="rtrl", hidden=4, steps=1, batch=4)
    run, carry = build(config)
    assert run.task.running_mean
    from rtrlx.train import _chunk_fn

    new, sums = _chunk_fn(run)(carry, 1)
    mean_bits = float(sums[1][0])  # a one-step chunk's totals are that step's batch mean
    assert float(new.running[0]) == pytest.approx(0.999 + 0.001 * mean_bits, rel=1e-6)
    assert float(new.running[1]) == pytest.approx(1.0)


def test_copy_ok_refuses_a_learner_that_cannot_restart_one_stream():
    config = TrainConfig(task="copy-ok", cell="elman", learner="rflo", hidden=4, steps=10)
    with pytest.raises(ValueError, match="restart_streams=0"):
        config.validate()
    dataclasses.replace(config, task_params={"restart_streams": 0}).validate()


def test_init_scale_draws_every_parameter_from_a_normal():
    config = TrainConfig(cell="rhn", hidden=64, init_scale=0.01, steps=1)
    _, carry = build(config)
    values = np.concatenate([np.ravel(a) for a in jax.tree.leaves(carry.params)])
    assert values.size > 8000
    assert abs(values.mean()) < 3 * 0.01 / np.sqrt(values.size)
    assert values.std() == pytest.approx(0.01, rel=0.05)


def test_clip_scope_cell_clips_the_cell_only():
    from rtrlx.train import _optimizer

    config = TrainConfig(optimizer="sgd", lr=1.0, clip=1.0, clip_scope="cell")
    params = ({"w": jnp.zeros(4)}, {"v": jnp.zeros(3)})
    grads = ({"w": jnp.full(4, 3.0)}, {"v": jnp.full(3, 5.0)})
    opt = _optimizer(config, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert float(optax.tree.norm(updates[0])) == pytest.approx(1.0)
    np.testing.assert_allclose(updates[1]["v"], -5.0)
    opt = _optimizer(dataclasses.replace(config, clip_scope="all"), params)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clip": -1.0}, "clip must be a finite number >= 0"),
        ({"init_scale": float("nan")}, "init_scale must be"),
        ({"clip_scope": "head"}, "unknown clip_scope 'head'; valid: all, cell"),
    ],
)
def test_bad_training_options_name_the_fix(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TrainConfig(), **change).validate()


def test_ptb_stagger_restarts_each_stream_at_its_own_multiples_of_reset():
    task, params = rtrlx.tasks.make("ptb-char", stagger=1, reset=100)
    assert task.reset_period(params) is None
    positions = jnp.array([0, 99, 100, 250, 300])
    got = jax.vmap(task.restarts, in_axes=(None, 0))(params, positions)
    assert got.tolist() == [True, False, True, False, True]
    assert task.restarts(rtrlx.tasks.make("ptb-char")[1], positions[0]) is None


def test_ptb_evaluation_without_resets_and_with_its_own_streams():
    """eval_reset=0 carries the state through each piece; the result differs from the
    reset-every-100 evaluation of the same model, and eval_streams sets the pieces."""
    text = jnp.asarray(np.random.default_rng(0).integers(0, 50, 2001), jnp.int32)
    split = {"train": text, "valid": text[:1001], "test": text[1000:]}
    cell = rtrlx.cells.GRU(50, 8, key=jax.random.key(0))
    head = __import__("equinox").nn.Linear(8, 50, key=jax.random.key(1))
    task, carried = rtrlx.tasks.make("ptb-char", eval_reset=0, eval_streams=2, **split)
    _, reset = rtrlx.tasks.make("ptb-char", eval_streams=2, **split)
    a, b = task.evaluate(carried, cell, head), task.evaluate(reset, cell, head)
    assert a["valid_bpc"] != b["valid_bpc"]
    assert all(5.0 < v < 7.5 for v in (*a.values(), *b.values()))  # near log2(50) untrained


@pytest.mark.slow  # 7 s
def test_recipes_plot_draws_runs_beside_the_published_curves(tmp_path, capsys):
    run = tmp_path / "run"
    config = dataclasses.replace(
        recipe("ok-copy").config, hidden=4, steps=20, chunk=10, recipe="ok-copy@1"
    )
    train(config, out=str(run))
    png = tmp_path / "plot.png"
    argv = ["recipes", "ok-copy", "--plot", str(png), "--runs", str(run)]
    assert main(argv) == 0
    assert png.stat().st_size > 10_000 and "1 runs" in capsys.readouterr().err
    other = tmp_path / "other"
    train(dataclasses.replace(config, recipe="", steps=10), out=str(other))
    assert main([*argv[:-1], str(other)]) == 2
    assert "is not a run of recipe ok-copy (its recipe: none)" in capsys.readouterr().err
    # A run away from the recipe's size, learning rate or batch says so in its label.
    moved = tmp_path / "moved"
    train(dataclasses.replace(config, steps=10, lr=1e-3, batch=2), out=str(moved))
    labels = plot_runs(recipe("ok-copy"), [str(run), str(moved)], str(png))
    assert labels == ["ok:16, n 4, seed 0", "ok:16, n 4, lr 0.001, batch 2, seed 0"]
    # A run that has not finished its first chunk is drawn as far as it has got: nowhere.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.json").write_text((run / "config.json").read_text())
    assert plot_runs(recipe("ok-copy"), [str(fresh)], str(png)) == ["ok:16, n 4, seed 0"]
    (fresh / "config.json").write_text("{torn")
    assert main([*argv[:-1], str(fresh)]) == 2
    assert f"{fresh} is not a run directory of rtrlx train" in capsys.readouterr().err
