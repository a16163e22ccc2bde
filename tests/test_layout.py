"""The order of a batch's streams in a step: the numbers do not depend on it, the choice shows."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx
from rtrlx._tree import keys_to_data
from rtrlx.learners import Layout, _layout, choose_layout, layout_step, make, streams_step
from rtrlx.train import TrainConfig, _job, train

T, B = 20, 3

# (learner, cell): the exact learners on cells they claim, and stochastic ones whose draws do
# not depend on the order (one key per stream; OK at full rank).
CASES = [
    ("rtrl", "gru"),
    ("snap:1", "gru"),
    ("snap:2", "lstm"),
    ("diag_rtrl", "lru"),
    ("kf_rtrl", "rhn"),
    ("ok:9", "elman"),  # full rank: cols of [W, b] = 5 + 3 + 1
]


def _problem(cell_name, key=0):
    k = jax.random.split(jax.random.key(key), 4)
    cell = rtrlx.cells.CELLS[cell_name](3, 5, key=k[0])
    head = eqx.nn.Linear(cell.output_size, 2, key=k[1])
    xs = jax.random.normal(k[2], (T, B, 3))
    ys = jax.random.normal(k[3], (T, B, 2))
    return cell, head, xs, ys


def _scan(step, learner, cell, head, xs, ys, key):
    state = learner.init(cell, key=key, batch_size=B)

    def body(carry, xy):
        state, total = carry
        state, loss, grads = step(cell, head, rtrlx.losses.mse, state, *xy)
        return (state, jax.tree.map(jnp.add, total, (loss, grads))), None

    zero = (jnp.zeros(()), jax.tree.map(jnp.zeros_like, _params(cell, head)))
    (state, total), _ = jax.lax.scan(body, (state, zero), (xs, ys))
    return state, total


def _params(cell, head):
    return eqx.filter(cell, eqx.is_inexact_array), eqx.filter(head, eqx.is_inexact_array)


# make test: the three quicker cases (3 s each); make test-slow: the others (4-7 s each).
@pytest.mark.parametrize(
    ("spec", "cell_name"),
    [
        c if c[0] in ("snap:1", "snap:2", "ok:9") else pytest.param(*c, marks=pytest.mark.slow)
        for c in CASES
    ],
)
def test_streams_in_turn_give_sequence_grads(spec, cell_name):
    learner = make(spec)
    cell, head, xs, ys = _problem(cell_name)
    key = jax.random.key(7)
    loss, grads = rtrlx.sequence_grads(
        learner, cell, head, rtrlx.losses.mse, xs, ys, key=key, by_stream=False
    )
    for name in ("batched", "streams"):
        _, (got_loss, got) = jax.jit(
            lambda xs, ys, name=name: _scan(
                layout_step(learner, name), learner, cell, head, xs, ys, key
            )
        )(xs, ys)
        np.testing.assert_allclose(got_loss, loss, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(grads), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def test_streams_in_turn_keep_each_streams_state():
    learner = make("kf_rtrl")
    cell, head, xs, ys = _problem("gru")
    key = jax.random.key(1)
    batched, _ = _scan(learner.step, learner, cell, head, xs, ys, key)
    in_turn, _ = _scan(streams_step(learner), learner, cell, head, xs, ys, key)
    for a, b in zip(*map(jax.tree.leaves, keys_to_data((in_turn, batched))), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_a_learner_whose_streams_share_state_cannot_run_them_in_turn():
    with pytest.raises(ValueError, match="shares state"):
        streams_step(make("rflo"))  # one feedback matrix for the whole batch
    cell, head, xs, ys = _problem("gru")
    with pytest.raises(ValueError, match="shares state"):
        choose_layout(make("rflo"), cell, head, rtrlx.losses.mse, xs[0], ys[0], "streams")
    with pytest.raises(ValueError, match="valid: auto, batched, streams"):
        choose_layout(make("rtrl"), cell, head, rtrlx.losses.mse, xs[0], ys[0], "diagonal")


def test_auto_says_why_it_keeps_the_batched_step():
    cell, head, xs, ys = _problem("gru")
    mse = rtrlx.losses.mse
    assert "share state" in choose_layout(make("rflo"), cell, head, mse, xs[0], ys[0]).reason
    assert choose_layout(make("rtrl"), cell, head, mse, xs[0, :1], ys[0, :1]).reason == (
        "one stream"
    )
    small = choose_layout(make("rtrl"), cell, head, mse, xs[0], ys[0])
    assert small.name == "batched" and "KiB" in small.reason and small.ms_per_step is None
    assert choose_layout(make("uoro"), cell, head, mse, xs[0], ys[0], "batched").reason == (
        "asked for"
    )


def test_auto_measures_both_orders_on_a_large_state(monkeypatch):
    monkeypatch.setattr(_layout, "MEASURE_BYTES", 0)
    cell, head, xs, ys = _problem("gru")
    layout = choose_layout(make("rtrl"), cell, head, rtrlx.losses.mse, xs[0], ys[0], repeats=2)
    assert layout.reason == "measured faster on this machine"
    assert set(layout.ms_per_step) == {"batched", "streams"}
    assert layout.name == min(layout.ms_per_step, key=layout.ms_per_step.__getitem__)
    assert all(t > 0 for t in layout.ms_per_step.values())


BASE = dict(
    task="copy",
    cell="gru",
    learner="rtrl",
    hidden=5,
    batch=3,
    chunk=10,
    lr=1e-2,
    task_params={"pattern": 3, "delay": 2},
)


@pytest.mark.slow  # 10 s
def test_training_gives_the_same_parameters_in_either_order(tmp_path):
    runs = {}
    for name in ("batched", "streams"):
        out = tmp_path / name
        result = train(TrainConfig(steps=30, layout=name, **BASE), out=str(out))
        assert result["layout"] == Layout(name, "asked for").as_dict()
        assert json.loads((out / "result.json").read_text())["layout"]["name"] == name
        job = _job(TrainConfig(steps=30, layout=name, **BASE))
        from rtrlx.driver import load_checkpoint

        runs[name] = load_checkpoint(str(out), job.carry)[1]
    a, b = runs["batched"], runs["streams"]
    assert int(a.layout) == 0 and int(b.layout) == 1
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # 10 s
def test_a_resumed_run_keeps_the_order_it_started_with(tmp_path, monkeypatch):
    monkeypatch.setattr(_layout, "MEASURE_BYTES", 0)
    first = train(TrainConfig(steps=20, **BASE), out=str(tmp_path))
    assert first["layout"]["reason"] == "measured faster on this machine"
    again = train(TrainConfig(steps=40, **BASE), out=str(tmp_path), resume=True)
    assert again["layout"] == {
        "name": first["layout"]["name"],
        "reason": "kept from the checkpoint",
        "ms_per_step": {},
    }
