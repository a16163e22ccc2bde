"""ES gradient estimators: unbiasedness, the past-descent guarantee and convergence."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rtrlx.es import ESState, antithetic, guided, past_descent


def _cos(a, b):
    return jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


def test_antithetic_es_is_unbiased_for_the_smoothed_gradient():
    """f = sum sin x: E[g] = e^{-sigma^2/2} cos x (the smoothed gradient), not cos x; a
    chi-square over the coordinates accepts the first and rejects the second."""
    size, sigma, keys = 8, 0.5, 16384
    x = jnp.linspace(-1.5, 1.5, size).at[0].set(0.0)
    est = antithetic(1, sigma)

    def one(key):
        return est.estimate(lambda p: jnp.sum(jnp.sin(p)), x, est.init(x, key=key))[0]

    g = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(0), keys)))
    mean, se = g.mean(axis=0), g.std(axis=0, ddof=1) / math.sqrt(keys)

    def p_value(target):
        return stats.chi2.sf(np.sum(((mean - target) / se) ** 2), size)

    assert p_value(np.exp(-(sigma**2) / 2) * np.cos(np.asarray(x))) > 1e-3
    assert p_value(np.cos(np.asarray(x))) < 1e-6


def _quadratic(key, size):
    k_a, k_b, k_x, k_u = jax.random.split(key, 4)
    a = jax.random.normal(k_a, (size, size))
    a = a @ a.T / size + jnp.eye(size)
    b = jax.random.normal(k_b, (size,))
    x = jax.random.normal(k_x, (size,))
    return (lambda p: 0.5 * p @ a @ p + b @ p), x, a @ x + b, jax.random.normal(k_u, (size,))


@pytest.mark.parametrize("pairs", [2, 5])
def test_past_descent_is_never_worse_than_its_surrogate(pairs):
    """On quadratics (exact slopes) and any surrogate: cos(g, grad) >= |cos(u, grad)| and
    g . grad >= 0, for every draw."""
    size = 50
    est = past_descent(pairs, sigma=0.3)

    def one(key):
        f, x, grad, u = _quadratic(key, size)
        k_est, k_mix = jax.random.split(key)
        # Surrogates from useless to good: the gradient mixed with noise.
        mix = jax.random.uniform(k_mix)
        surrogate = mix * grad / jnp.linalg.norm(grad) + (1 - mix) * u / jnp.linalg.norm(u)
        state = ESState(k_est, surrogate, jnp.ones((), jnp.int32))
        g, _, _ = est.estimate(f, x, state)
        return _cos(g, grad), jnp.abs(_cos(surrogate, grad)), g @ grad

    cos_g, cos_u, dot = jax.vmap(one)(jax.random.split(jax.random.key(1), 200))
    assert bool(jnp.all(cos_g >= cos_u - 1e-5)) and bool(jnp.all(dot >= -1e-6))
    assert float(jnp.mean(cos_g - cos_u)) > 0.01  # and strictly better on average


def test_past_descent_converges_on_a_linear_function_at_the_predicted_rate():
    """sin^2 of the estimate shrinks by 1 - rho per call, rho ~ (n-1)/(P+n-1) (the fraction
    the n-1 random directions recover of what the surrogate misses); plain ES stays at
    cos^2 ~ n/(n+P+1)."""
    size, pairs, calls, seeds = 200, 5, 40, 64
    w = jax.random.normal(jax.random.key(2), (size,))

    def run(est, key):
        def call(state, _):
            g, state, _ = est.estimate(lambda p: w @ p, jnp.zeros(size), state)
            return state, 1 - _cos(g, w) ** 2

        return jax.lax.scan(call, est.init(jnp.zeros(size), key=key), None, length=calls)[1]

    keys = jax.random.split(jax.random.key(3), seeds)
    sin2 = np.asarray(jax.vmap(lambda k: run(past_descent(pairs, 1.0), k))(keys))
    rho0, rho = pairs / (size + pairs + 1), (pairs - 1) / (size + pairs - 1)
    predicted = (1 - rho0) * (1 - rho) ** np.arange(calls)
    for t in (10, 39):
        se = sin2[:, t].std(ddof=1) / math.sqrt(seeds)
        assert abs(sin2[:, t].mean() - predicted[t]) < 3 * se + 0.01 * predicted[t]
    plain = np.asarray(jax.vmap(lambda k: run(antithetic(pairs, 1.0), k))(keys))
    cos2 = 1 - plain[:, 10:]
    assert abs(cos2.mean() - pairs / (pairs + size + 1)) < 4 * cos2.std() / math.sqrt(cos2.size)


def test_guided_es_expectation_on_a_linear_function():
    """E[g] = beta ((alpha / P) grad + (1 - alpha) (u . grad) u): biased toward the surrogate
    by the knob alpha."""
    size, alpha, beta, keys = 6, 0.3, 2.0, 20000
    w = jnp.arange(1.0, size + 1)
    u = jnp.zeros(size).at[0].set(1.0)
    est = guided(1, sigma=0.1, alpha=alpha, beta=beta)

    def one(key):
        return est.estimate(
            lambda p: w @ p, jnp.zeros(size), ESState(key, u, jnp.ones((), jnp.int32))
        )[0]

    g = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(4), keys)))
    expected = beta * (alpha / size * np.asarray(w) + (1 - alpha) * float(u @ w) * np.asarray(u))
    se = g.std(axis=0, ddof=1) / math.sqrt(keys)
    assert np.all(np.abs(g.mean(axis=0) - expected) < 4.5 * se + 1e-9)


@pytest.mark.parametrize("make", [antithetic, past_descent, guided])
def test_state_keeps_its_shape_and_the_estimate_compiles_once(make):
    est = make(3)
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    traces = []

    def f(p):
        traces.append(1)
        return jnp.sum(p["w"] ** 2) + jnp.sum(jnp.sin(p["b"]))

    step = jax.jit(lambda p, s: est.estimate(f, p, s))
    state = est.init(params, key=jax.random.key(0))
    shapes = jax.tree.map(jnp.shape, state)
    for _ in range(3):
        g, state, _ = step(params, state)
    assert jax.tree.map(jnp.shape, state) == shapes and int(state.step) == 3
    assert jax.tree.structure(g) == jax.tree.structure(params)
    assert len(traces) <= 2  # traced once (lax.map traces its body once more)
    again = step(params, est.init(params, key=jax.random.key(0)))[0]
    first = est.estimate(f, params, est.init(params, key=jax.random.key(0)))[0]
    np.testing.assert_allclose(again["w"], first["w"], rtol=1e-6)  # same key, same estimate


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: antithetic(0), "pairs must be a positive integer"),
        (lambda: antithetic(2, sigma=0.0), "sigma must be > 0"),
        (lambda: past_descent(1), "needs pairs >= 2"),
        (lambda: guided(2, alpha=1.5), r"alpha must be in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _problem(batch=None, steps=12):
    import equinox as eqx

    import rtrlx

    k = jax.random.split(jax.random.key(5), 4)
    cell = rtrlx.cells.GRU(3, 4, key=k[0])
    head = eqx.nn.Linear(4, 2, key=k[1])
    lead = (steps,) if batch is None else (steps, batch)
    xs = jax.random.normal(k[2], (*lead, 3))
    ys = jax.random.normal(k[3], (*lead, 2))
    return cell, head, xs, ys


@pytest.mark.parametrize("window", [12, 5])
def test_es_learner_estimates_the_window_gradients_without_bias(window):
    """The mean over keys of the ES learner's gradient (whole sequence in one window, or in
    windows of 5 with the state carried) matches the exact gradient of the same windows
    (BPTT for one window, tbptt(5) for five-step windows) within its standard error; the
    readout's gradient is exact."""
    import rtrlx
    from rtrlx.learners import es

    cell, head, xs, ys = _problem(batch=2)
    learner = es(4, window=window, sigma=1e-3)
    exact = rtrlx.sequence_grads(rtrlx.tbptt(window), cell, head, rtrlx.losses.mse, xs, ys)[1]

    def one(key):
        return rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys, key=key)[1]

    keys = jax.random.split(jax.random.key(6), 2048)
    g_cell, g_head = jax.jit(jax.vmap(one))(keys)
    flat = jax.vmap(lambda g: jax.flatten_util.ravel_pytree(g)[0])(g_cell)
    target = jax.flatten_util.ravel_pytree(exact[0])[0]
    mean, se = flat.mean(axis=0), flat.std(axis=0, ddof=1) / math.sqrt(len(keys))
    chi2 = float(jnp.sum(((mean - target) / se) ** 2))
    assert stats.chi2.sf(chi2, target.size) > 1e-3
    np.testing.assert_allclose(
        jax.flatten_util.ravel_pytree(jax.tree.map(lambda a: a[0], g_head))[0],
        jax.flatten_util.ravel_pytree(exact[1])[0],
        rtol=1e-6,
    )
    assert not learner.exact_for(cell, 12)


def test_es_learner_never_differentiates_the_cell():
    """A cell whose step refuses differentiation trains with ES, not with RTRL."""
    import equinox as eqx

    import rtrlx
    from rtrlx.learners import es

    @jax.custom_jvp
    def refuse(h):
        return h

    @refuse.defjvp
    def _(primals, tangents):
        raise RuntimeError("differentiated")

    class Opaque(rtrlx.cells.GRU):
        def __call__(self, state, x):
            return refuse(super().__call__(state, x))

    cell = Opaque(3, 4, key=jax.random.key(0))
    head = eqx.nn.Linear(4, 2, key=jax.random.key(1))
    _, _, xs, ys = _problem()
    loss, grads = rtrlx.sequence_grads(
        es(3, window=6), cell, head, rtrlx.losses.mse, xs, ys, key=jax.random.key(2)
    )
    assert (
        bool(jnp.isfinite(loss))
        and float(
            jax.flatten_util.ravel_pytree(grads[0])[0] @ jax.flatten_util.ravel_pytree(grads[0])[0]
        )
        > 0
    )
    with pytest.raises(RuntimeError, match="differentiated"):
        rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys)


@pytest.mark.slow  # 10 s
def test_es_learner_trains_online_from_the_command_line(tmp_path, capsys):
    from rtrlx.cli import main

    argv = ["train", "--task", "adding", "--cell", "gru", "--hidden", "4", "--steps", "100"]
    argv += ["--chunk", "50", "--task-param", "length=50", "--out", str(tmp_path)]
    for learner in ("es:4", "es_pd:4"):
        assert main([*argv, "--learner", learner, "--overwrite"]) == 0
        result = __import__("json").loads(capsys.readouterr().out)
        assert result["learner"] == learner and result["steps"] == 100
