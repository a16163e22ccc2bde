"""Task streams: the copy task as KF-RTRL and OK define it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx
from rtrlx.tasks import copy_stream


def test_copy_stream_recalls_what_it_showed():
    xs, ys = copy_stream(jax.random.key(3), 400, min_length=2, max_length=6)
    xs, ys = np.asarray(xs), np.asarray(ys)
    t = 0
    episodes = 0
    while True:
        length = 0
        while t + length < 400 and xs[t + length, 2] == 0 and xs[t + length, :2].sum() == 1:
            length += 1
        if t + 2 * length + 1 > 400:
            break
        assert 2 <= length <= 6
        assert xs[t + length, 2] == 1  # the marker
        shown = xs[t : t + length, :2]
        np.testing.assert_array_equal(ys[t + length + 1 : t + 2 * length + 1], shown)
        assert not ys[t : t + length + 1].any()  # nothing to predict before recall
        assert not xs[t + length + 1 : t + 2 * length + 1].any()  # blank during recall
        t += 2 * length + 1
        episodes += 1
    assert episodes > 20


def test_copy_stream_rejects_bad_lengths():
    with pytest.raises(ValueError, match="min_length <= max_length"):
        copy_stream(jax.random.key(0), 10, min_length=3, max_length=2)


def test_soft_cross_entropy_ignores_unscored_steps():
    logits = jnp.array([0.3, -1.0])
    assert float(rtrlx.losses.soft_cross_entropy(logits, jnp.zeros(2))) == 0.0
    np.testing.assert_allclose(
        rtrlx.losses.soft_cross_entropy(logits, jnp.array([0.0, 1.0])),
        rtrlx.losses.cross_entropy(logits, jnp.array(1)),
    )


def run_task(name, steps, streams=3, level=None, **params):
    task, p = rtrlx.tasks.make(name, **params)
    lvl = task.init_level(p) if level is None else jnp.asarray(float(level))
    keys = jax.random.split(jax.random.key(0), streams)
    state = jax.vmap(task.init, in_axes=(None, 0))(p, keys)

    def body(state, key):
        state, x, y = jax.vmap(task.step, in_axes=(None, None, 0, 0))(
            p, lvl, state, jax.random.split(key, streams)
        )
        return state, (x, y)

    _, (xs, ys) = jax.lax.scan(body, state, jax.random.split(jax.random.key(1), steps))
    return task, p, np.asarray(xs), np.asarray(ys)


def test_copy_curriculum_strings_follow_the_level():
    _, _, xs, ys = run_task("copy-curriculum", 600, level=9)
    for s in range(xs.shape[1]):
        x, y = xs[:, s], ys[:, s]
        markers = np.flatnonzero(x[:, 2])
        assert len(markers) > 10
        t = 0
        for m in markers[:-1]:
            length = m - t
            assert 5 <= length <= 9  # max(1, T_ - U{0..4}) with T_ = 9
            np.testing.assert_array_equal(y[m + 1 : m + 1 + length], x[t:m, :2])
            t = m + 1 + length


def test_copy_curriculum_level_rule():
    task, p = rtrlx.tasks.make("copy-curriculum", threshold=0.15)
    level = jnp.asarray(3.0)
    good = jnp.array([0.1, 1.0, 1.0])  # 0.1 bits per recalled character
    bad = jnp.array([0.2, 1.0, 1.0])
    up, running = task.next_level(p, level, good)
    assert float(up) == 4.0
    np.testing.assert_allclose(running, task.init_running(p))  # restarts at chance
    same, running = task.next_level(p, level, bad)
    assert float(same) == 3.0
    np.testing.assert_allclose(running, bad)


def test_fixed_copy_task_layout():
    task, p, xs, ys = run_task("copy", 2 * 15, pattern=5, delay=4, symbols=6)
    period = task.reset_period(p)
    assert period == 15
    x, y = xs[:, 0], ys[:, 0]
    for start in (0, period):
        shown = x[start : start + 5, :6]
        assert np.all(shown.sum(1) == 1)
        assert not x[start + 5 : start + 9].any()  # the delay is blank
        assert x[start + 9, 6] == 1  # the marker
        np.testing.assert_array_equal(y[start + 10 : start + 15], shown)
        assert not y[start : start + 10].any()


def test_adding_task_statistics():
    _, _, xs, ys = run_task("adding", 20 * 200, streams=4, length=20)
    xs = xs.reshape(200, 20, 4, 2)
    ys = ys.reshape(200, 20, 4, 2)
    flags = xs[..., 1]
    assert np.all(flags.sum(1) == 2)
    assert np.all(flags[:, :10].sum(1) == 1) and np.all(flags[:, 10:].sum(1) == 1)
    targets = (xs[..., 0] * flags).sum(1)
    np.testing.assert_allclose(ys[:, -1, :, 0], targets, rtol=1e-6)
    assert np.all(ys[:, :-1, :, 1] == 0) and np.all(ys[:, -1, :, 1] == 1)
    # Predicting 1 gives the baseline MSE of 1/6.
    assert abs(np.mean((targets - 1) ** 2) - 1 / 6) < 0.02


def test_ptb_char_splits():
    task, p = rtrlx.tasks.make("ptb-char")
    sizes = [int(a.shape[0]) for a in (p.train, p.valid, p.test)]
    assert sizes == [5_101_619, 399_782, 449_945]
    assert int(p.train.max()) == 49 and int(p.train.min()) == 0
    assert task.reset_period(p) == 100
    assert task.reset_period(rtrlx.tasks.make("ptb-char", reset=0)[1]) is None  # never
    _, _, xs, ys = run_task("ptb-char", 50)
    np.testing.assert_array_equal(np.argmax(xs[1:], -1), ys[:-1])  # next character


def test_init_batch_is_each_streams_own_init_unless_a_task_links_them():
    import jax

    task, p = rtrlx.tasks.make("ptb-char")
    key = jax.random.key(3)
    own = [int(task.init(p, k)) for k in jax.random.split(key, 5)]
    np.testing.assert_array_equal(task.init_batch(p, key, 5), own)  # random offsets
    _, even = rtrlx.tasks.make("ptb-char", offsets=1)
    last = int(p.train.shape[0]) - 2
    np.testing.assert_array_equal(
        task.init_batch(even, key, 32), np.floor(np.linspace(0, last, 32)).astype(int)
    )
    np.testing.assert_array_equal(task.init_batch(even, key, 1), [0])
    with pytest.raises(ValueError, match="offsets"):
        rtrlx.tasks.make("ptb-char", offsets=2)
    from rtrlx.train import TrainConfig, build

    config = TrainConfig(task="ptb-char", hidden=4, batch=4, task_params={"offsets": 1})
    _, carry = build(config)  # the training loop's streams start there
    np.testing.assert_array_equal(carry.task_state, np.arange(4) * last // 3)


def test_make_errors_list_the_choices():
    with pytest.raises(ValueError, match="valid tasks: copy-curriculum"):
        rtrlx.tasks.make("nope")
    with pytest.raises(ValueError, match="its parameters: length"):
        rtrlx.tasks.make("adding", lenght=3)


def test_influence_cell_has_the_uoro_dynamics():
    task, p = rtrlx.tasks.make("influence-balancing", units=5, positive=2, theta=0.5)
    cell, head = task.model(p)
    s = jnp.arange(5.0)
    want = 0.5 * s + 0.5 * jnp.array([1.0, 2, 3, 4, 0]) + 0.5 * jnp.array([1.0, 1, -1, -1, -1])
    np.testing.assert_allclose(cell(s, jnp.zeros(1)), want)
    np.testing.assert_allclose(head(cell.features(s)), [0.0])
    # Short term, theta raises unit 0; in the long run it lowers it: the task's point.
    state = cell.init_state()
    first = float(cell(state, jnp.zeros(1))[0])
    for _ in range(200):
        state = cell(state, jnp.zeros(1))
    assert first > 0 > float(state[0])
    loss = task.evaluate(p, cell, head)["unroll_loss"]
    np.testing.assert_allclose(loss, 0.5 * (float(state[0]) - 1) ** 2, rtol=1e-6)


def test_rtrl_is_exact_on_the_influence_cell_through_its_dense_immediate_jacobian(monkeypatch):
    """theta drives every unit, so the cell is not unit-local and rtrl takes J_theta dense."""
    task, p = rtrlx.tasks.make("influence-balancing", units=6, positive=2, theta=0.7)
    cell, head = task.model(p)
    assert not cell.unit_local
    xs = jnp.zeros((25, 1))
    ys = jax.random.normal(jax.random.key(0), (25, 1))
    _, ref = rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)
    _, got = rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(got[0].theta, ref[0].theta, rtol=1e-10)
    assert float(jnp.abs(ref[0].theta).max()) > 1e-3
    # A false claim of unit-locality (the sparse J_theta would drop real terms) is caught by
    # rtrl's check of the declaration, which then takes the dense path: still exact.
    monkeypatch.setattr(type(cell), "unit_local", True)
    from rtrlx.learners._structure import unit_owner

    assert unit_owner(cell) is None
    _, still = rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(still[0].theta, ref[0].theta, rtol=1e-10)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "adding",
            {"length": "abc"},
            r"parameter length must be an integer >= 2; got 'abc', "
            r"which is not a number",
        ),
        ("adding", {"length": 0}, r"length must be an integer >= 2; got 0\."),
        ("adding", {"length": -3}, r"length must be an integer >= 2; got -3\."),
        ("adding", {"length": 2.5}, r"got 2\.5, which is not an integer"),
        ("adding", {"length": True}, r"got True, a bool"),
        ("copy", {"pattern": 0}, r"pattern must be an integer >= 1; got 0\."),
        ("copy", {"delay": -1}, r"delay must be an integer >= 0; got -1\."),
        ("copy-curriculum", {"max_length": 0}, r"max_length must be an integer >= 1"),
        ("copy-curriculum", {"start": 0}, r"start must be an integer >= 1; got 0\."),
        ("copy-curriculum", {"threshold": float("nan")}, r"threshold must be a finite number > 0"),
        ("copy-curriculum", {"smoothing": 1.5}, r"smoothing must be a finite number in \(0, 1\]"),
        ("copy-curriculum", {"start": 300}, r"need start <= max_length; got start=300, "),
        ("influence-balancing", {"theta": float("inf")}, r"theta must be a finite number"),
        ("influence-balancing", {"units": 4}, r"need positive <= units; got positive=10"),
        ("ptb-char", {"reset": -1}, r"reset must be an integer >= 0"),
        ("listops", {"max_length": 0}, r"max_length must be an integer >= 3"),
        ("listops", {"max_args": 1}, r"max_args must be an integer >= 2"),
        ("listops", {"min_length": 9, "max_length": 10}, r"need min_length < max_length - 1"),
        ("pixel", {"examples": -1}, r"examples must be an integer >= 0"),
        ("pixel", {"dataset": "mnist"}, r"dataset must be auto, fashion-mnist or digits"),
    ],
)
def test_bad_task_parameters_name_the_task_parameter_value_and_range(name, params, message):
    with pytest.raises(ValueError, match=message) as err:
        rtrlx.tasks.make(name, **params)
    assert str(err.value).startswith(f"task {name!r}: ")


def test_task_parameters_are_coerced_to_their_kind():
    _, p = rtrlx.tasks.make("adding", length=30.0)
    assert p.length == 30 and type(p.length) is int
    _, p = rtrlx.tasks.make("copy-curriculum", threshold=1, start="3")
    assert type(p.threshold) is float and p.start == 3


@pytest.mark.parametrize("name", ["adding", "copy", "copy-curriculum"])
def test_nothing_scored_reports_none_not_zero(name):
    task, p = rtrlx.tasks.make(name)
    report = task.report(p, task.init_level(p), jnp.zeros(3))
    scored = {k: v for k, v in report.items() if k not in ("T_", "baseline_mse")}
    assert scored and all(v is None for v in scored.values()), report


@pytest.mark.parametrize(
    "name",
    [
        # ListOps draws whole expressions in Python before its first step (50 s here).
        pytest.param(n, marks=pytest.mark.slow) if n == "listops" else n
        for n in rtrlx.tasks.TASKS
    ],
)
def test_every_registered_task_follows_the_task_contract(name):
    """Every task in the registry (a new one too, with no edit here): pure jitted steps of
    the declared sizes, a finite loss and a report of named numbers (or None)."""
    task, params = rtrlx.tasks.make(name)
    level = task.init_level(params)
    state = task.init(params, jax.random.key(0))
    step = jax.jit(lambda s, k: task.step(params, level, s, k))
    out = jnp.zeros(task.output_size)
    totals = None
    for k in jax.random.split(jax.random.key(1), 3):
        state, x, y = step(state, k)
        assert x.shape == (task.input_size,)
        assert bool(jnp.all(jnp.isfinite(x)))
        assert bool(jnp.isfinite(task.loss(out, y)))
        stats = task.stats(out, y)
        totals = stats if totals is None else totals + stats
    report = task.report(params, level, totals)
    assert report and all(v is None or np.isfinite(v) for v in report.values())
