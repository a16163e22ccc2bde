"""The language-modelling protocol: carried state, full splits, sampling, resume, budgets."""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rtrlx._tree import standard_promotion, with_standard_promotion
from rtrlx.lm import (
    LMConfig,
    _build,
    _draw,
    bpc,
    build_model,
    lm,
    load_model,
    sample,
    window_loss,
)
from rtrlx.tasks.ptb import _corpus

TINY = {"cell": "fs-lstm:2", "hidden": 6, "slow": 4, "batch": 4, "window": 10, "eval_every": 2}


def _model(cell="fs-lstm:2", **kw):
    return build_model(LMConfig(cell=cell, hidden=6, **kw), jax.random.key(0))


def test_state_carried_across_windows_equals_one_long_pass():
    model = _model()
    codes = jax.random.randint(jax.random.key(1), (3, 41), 0, 50)
    h0 = jax.tree.map(lambda a: jnp.zeros((3, *a.shape), a.dtype), model.cell.init_state())
    whole, h_whole = window_loss(model, h0, codes[:, :40], codes[:, 1:], None, 0.0)
    first, h = window_loss(model, h0, codes[:, :20], codes[:, 1:21], None, 0.0)
    second, h = window_loss(model, h, codes[:, 20:40], codes[:, 21:], None, 0.0)
    np.testing.assert_allclose(first + second, whole, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(h), jax.tree.leaves(h_whole), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_training_reads_only_the_training_text():
    run, _ = _build(LMConfig(**TINY))
    train = _corpus()[1]["train"]
    length = train.shape[0] // 4
    np.testing.assert_array_equal(run.streams, train[: 4 * length].reshape(4, length))
    assert run.per_epoch == (length - 1) // 10
    # The last window's targets end inside the stream: nothing past it is read.
    assert (run.per_epoch - 1) * 10 + 1 + 10 <= length
    np.testing.assert_array_equal(run.test, _corpus()[1]["test"])


def test_a_uniform_model_scores_log2_of_the_vocabulary_on_every_character():
    model = _model("lstm")
    model = eqx.tree_at(
        lambda m: (m.head.weight, m.head.bias), model, (model.head.weight * 0, model.head.bias * 0)
    )
    codes = jnp.asarray(_corpus()[1]["valid"][:1001])
    for streams in (1, 7, 64):  # 1000 targets: pieces that divide it and pieces that do not
        assert bpc(model, codes, streams) == pytest.approx(math.log2(50), rel=1e-12)


def test_bpc_scores_every_character_once_whatever_the_pieces():
    model = _model("gru")
    codes = jnp.asarray(_corpus()[1]["valid"][:301])
    one = bpc(model, codes, 1)
    xs = jnp.asarray(codes)
    h, bits = model.cell.init_state(), 0.0
    for t in range(300):
        h = model.cell(h, model.inputs(xs[t]))
        bits -= float(jax.nn.log_softmax(model.logits(h))[xs[t + 1]]) / math.log(2)
    assert one == pytest.approx(bits / 300, rel=1e-10)
    # Cut into pieces, each starts from a zero state: close to, not equal to, one pass.
    assert bpc(model, codes, 7) == pytest.approx(one, rel=0.05)


def test_a_small_fsrnn_learns_a_tiny_corpus():
    """Within 400 updates the model predicts a periodic text almost perfectly."""
    text = jnp.asarray(np.tile([3, 17, 4, 29, 8, 3, 11], 60))
    model = build_model(LMConfig(cell="fs-lstm:2", hidden=16, slow=8), jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = optax.adam(1e-2)
    state = with_standard_promotion(opt.init, params)
    xs, ys = text[None, :-1], text[None, 1:]
    h0 = jax.tree.map(lambda a: a[None], model.cell.init_state())

    @jax.jit
    def update(params, state):
        loss = lambda p: window_loss(eqx.combine(p, static), h0, xs, ys, None, 0.0)[0]  # noqa: E731
        g = jax.grad(loss)(params)
        with standard_promotion():  # optax mixes Python floats and int32 counts
            updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    before = bpc(model, text, 1)
    for _ in range(400):
        params, state = update(params, state)
    after = bpc(eqx.combine(params, static), text, 1)
    assert before > 4.0 and after < 0.3, (before, after)


def test_sample_draws_from_the_models_distribution():
    model = _model()
    head = model.head
    peaked = eqx.tree_at(  # a distinctive distribution, far from uniform
        lambda h: (h.weight, h.bias),
        head,
        (head.weight * 30, jax.random.normal(jax.random.key(7), head.bias.shape) * 2),
    )
    model = eqx.tree_at(lambda m: m.head, model, peaked)
    key = jax.random.key(3)
    prime = jnp.asarray([5, 9])
    first = int(_draw(model, prime, 1, key, 1.0)[0])
    h = model.cell.init_state()
    for code in prime:
        h = model.cell(h, model.inputs(code))
    logits = model.logits(h)
    assert first == int(jax.random.categorical(jax.random.split(key, 1)[0], logits))
    n = 4000
    keys = jax.random.split(jax.random.key(11), n)
    draws = np.asarray(jax.vmap(lambda k: _draw(model, prime, 1, k, 1.0)[0])(keys))
    p = np.asarray(jax.nn.softmax(logits))
    common = n * p >= 5
    observed = np.array([np.sum(draws == c) for c in np.flatnonzero(common)])
    chi2 = float(np.sum((observed - n * p[common]) ** 2 / (n * p[common])))
    dof = int(common.sum())
    assert dof >= 5 and chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)
    flat = np.full(50, n / 50)  # the same draws are far from a uniform distribution
    assert float(np.sum((np.bincount(draws, minlength=50) - flat) ** 2 / flat)) > 10 * dof
    text = sample(model, "the ", 30, key)
    assert len(text) == 30 and set(text) <= set(_corpus()[0])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sample(model, "thé", 5, key)


@pytest.mark.slow  # 19 s
def test_resume_continues_exactly_and_a_budget_stops_the_run(tmp_path):
    config = LMConfig(**TINY, windows=4, eval_streams=1024)
    whole = lm(config, out=str(tmp_path / "whole"))
    lm(LMConfig(**TINY, windows=2, eval_streams=1024), out=str(tmp_path / "split"))
    split = lm(config, out=str(tmp_path / "split"), resume=True)
    assert split["test_bpc"] == pytest.approx(whole["test_bpc"], rel=1e-12)
    assert split["valid_bpc"] == pytest.approx(whole["valid_bpc"], rel=1e-12)
    _, model = load_model(str(tmp_path / "split"))
    assert bpc(model, jnp.asarray(_corpus()[1]["test"]), 1024) == pytest.approx(
        whole["test_bpc"], rel=1e-12
    )
    budget = lm(
        LMConfig(**TINY, windows=100, minutes=1e-4, eval_streams=1024),
        out=str(tmp_path / "budget"),
    )
    assert budget["windows"] == 2 and "budget" in budget["stopped"]
    records = [json.loads(line) for line in open(tmp_path / "whole" / "metrics.jsonl")]
    assert [r["step"] for r in records] == [2, 4]
    assert (tmp_path / "whole" / "curves.png").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cell": "fs-transformer:2"}, "unknown cell"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"cell": "lstm", "slow": 10}, "slow applies to fs-"),
        ({"cell": "lstm", "zoneout_c": 0.5}, "zoneout applies to fs-"),
        ({"batch": 100_000, "window": 100}, "no whole window"),
        ({"window": 0}, "window must be an integer >= 1"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LMConfig(**kwargs).validate()


@pytest.mark.slow  # 19 s
def test_cli_compares_cells_at_equal_parameters_and_samples(tmp_path, capsys):
    from rtrlx.cli import main

    out = str(tmp_path / "runs")
    flags = ["--params", "4000", "--batch", "4", "--window", "10", "--windows", "2"]
    flags += ["--eval-every", "2", "--eval-streams", "1024", "--out", out]
    assert main(["lm", "--cell", "lstm,fs-lstm:2", *flags]) == 0
    summary = json.load(open(tmp_path / "runs" / "summary.json"))
    counts = [r["parameters"] for r in summary]
    assert {r["cell"] for r in summary} == {"lstm", "fs-lstm:2"}
    assert max(counts) - min(counts) < 0.05 * 4000
    assert main(["lm", "--cell", "lstm,fs-lstm:2", *flags, "--resume"]) == 0
    assert "finished in" in capsys.readouterr().err
    assert main(["sample", "--run", f"{out}/fs-lstm-2", "--chars", "25", "--prime", "a "]) == 0
    assert len(capsys.readouterr().out) == len("a ") + 25 + 1
    assert main(["sample", "--run", str(tmp_path / "none")]) == 2
    assert main(["lm", "--cell", "fs-lstm:1", *flags]) == 2
    assert main(["lm", "--cell", "fs-lstm:2", "--slow", "8", *flags]) == 2
    assert "drop --slow" in capsys.readouterr().err
