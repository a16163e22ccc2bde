"""The Fast-Slow RNN and the stacked cell: which sub-cell reads what, against a hand step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx


def _fs(k=3, cell="lstm", **kw):
    return rtrlx.cells.FSRNN(4, 6, slow_size=5, k=k, cell=cell, key=jax.random.key(0), **kw)


def _random_state(cell, key):
    return jax.tree.map(lambda a: jax.random.normal(key, a.shape, a.dtype), cell.init_state())


@pytest.mark.parametrize("k", [2, 4])
def test_fsrnn_step_is_the_papers_chain(k):
    """F1 reads the last fast state and x, S reads F1, F2 reads F1's state and S, F3.. go on."""
    cell = _fs(k)
    state = _random_state(cell, jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (4,))
    (hf, hs), (cf, cs) = (state[0][:6], state[0][6:]), (state[1][:6], state[1][6:])
    f1, sl = cell.fast[0], cell.slow
    fast = f1((hf, cf), x)
    slow = sl((hs, cs), fast[0])
    fast = cell.fast[1](fast, slow[0])
    for fi in cell.fast[2:]:
        fast = fi(fast, jnp.zeros(1))
    want = (jnp.concatenate([fast[0], slow[0]]), jnp.concatenate([fast[1], slow[1]]))
    got = cell(state, x)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13)
    np.testing.assert_allclose(cell.features(got), fast[0], rtol=1e-13)
    assert cell.hidden_size == 11 and cell.output_size == 6 and len(cell.fast) == k


def test_zoneout_is_its_expectation_in_the_deterministic_step():
    plain, zoned = _fs(2), _fs(2, zoneout_h=0.1, zoneout_c=0.5)
    state = _random_state(plain, jax.random.key(1))
    x = jnp.ones(4)
    s = plain.sub_states(state)
    f = plain.fast[0](s["fast"], x)
    f = (0.9 * f[0] + 0.1 * s["fast"][0], 0.5 * f[1] + 0.5 * s["fast"][1])
    got = zoned(state, x)
    # F1's zoned-out state is what S reads: compare S's new state.
    slow = plain.slow(s["slow"], f[0])
    slow = (0.9 * slow[0] + 0.1 * s["slow"][0], 0.5 * slow[1] + 0.5 * s["slow"][1])
    np.testing.assert_allclose(zoned.sub_states(got)["slow"][1], slow[1], rtol=1e-13)


def test_regularised_step_draws_masks_and_equals_the_plain_step_without_them():
    cell = _fs(2)
    state, x = _random_state(cell, jax.random.key(1)), jnp.ones(4)
    same = cell.regularised(state, x, jax.random.key(3), 0.0)
    for a, b in zip(same, cell(state, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    zoned = _fs(2, zoneout_h=0.5, zoneout_c=0.5)
    draws = [zoned.regularised(state, x, jax.random.key(i), 0.3)[1] for i in range(200)]
    kept = np.mean([np.asarray(d[6:] == state[1][6:]) for d in draws])
    assert 0.4 < kept < 0.6, "the slow c keeps its old value with probability 0.5"


def test_stacked_layers_read_the_layer_below():
    cell = rtrlx.cells.Stacked(4, 5, layers=3, cell="gru", key=jax.random.key(0))
    state = jax.random.normal(jax.random.key(1), (15,))
    x = jnp.ones(4)
    h1 = cell.cells[0](state[:5], x)
    h2 = cell.cells[1](state[5:10], h1)
    h3 = cell.cells[2](state[10:], h2)
    np.testing.assert_allclose(cell(state, x), jnp.concatenate([h1, h2, h3]), rtol=1e-13)
    np.testing.assert_allclose(cell.features(cell(state, x)), h3, rtol=1e-13)


@pytest.mark.parametrize(  # make test: one block type (8-9 s each); make test-slow: the others
    "block",
    ["elman", *(pytest.param(b, marks=pytest.mark.slow) for b in ("gru", "lru", "ln-lstm"))],
)
def test_any_block_type_builds_and_rtrl_equals_bptt(block):
    cell = rtrlx.cells.FSRNN(3, 4, slow_size=3, k=3, cell=block, key=jax.random.key(0))
    import equinox as eqx

    head = eqx.nn.Linear(cell.output_size, 2, key=jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (20, 3))
    ys = jax.random.normal(jax.random.key(3), (20, 2))
    _, g_ref = rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)
    _, g = rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys)
    flat = lambda t: jax.flatten_util.ravel_pytree(t)[0]  # noqa: E731
    np.testing.assert_allclose(flat(g), flat(g_ref), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 1}, "k >= 2"),
        ({"slow_size": 0}, "slow_size must be an integer >= 1"),
        ({"cell": "transformer"}, "unknown block cell 'transformer'; valid blocks: elman"),
        ({"cell": "fsrnn"}, "unknown block cell 'fsrnn'"),
        ({"zoneout_c": 1.0}, r"zoneout_c must be in \[0, 1\)"),
    ],
)
def test_bad_fsrnn_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rtrlx.cells.FSRNN(3, 4, key=jax.random.key(0), **kwargs)
    with pytest.raises(ValueError, match="fast_size must be an integer >= 1"):
        rtrlx.cells.FSRNN(3, 0, key=jax.random.key(0))
