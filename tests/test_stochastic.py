"""The approximations of RTRL: unbiased where their papers say so, and what else they promise."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cover, flat, make_problem

import rtrlx
from rtrlx.learners.ok import ok_reduce, optimal_factors

KEYS = 2000


def sampled_grads(learner, cell, head, xs, ys, n=KEYS, seed=1):
    """One vmap of ``sequence_grads`` over ``n`` keys: an ``(n, P)`` array of cell gradients."""

    def one(key):
        return flat(
            rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys, key=key)[1][0]
        )

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), n))


def exact_grads(cell, head, xs, ys):
    return flat(rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)[1][0])


@pytest.mark.parametrize(
    ("spec", "cell_name"),
    # make test: a cover (every learner and every cell once); make test-slow: the rest.
    cover(
        [(spec, cell) for spec in ("uoro", "kf_rtrl", "ok:2") for cell in ("elman", "rhn")]
        # two Kronecker factors (GRU), an (h, c) state (LSTM), a complex diagonal cell (LRU)
        + [("kf_rtrl", "gru"), ("ok:2", "lstm"), ("uoro", "lru")]
    ),
)
def test_unbiased(spec, cell_name):
    cell, head, xs, ys = make_problem(cell_name)
    exact = exact_grads(cell, head, xs, ys)
    samples = np.asarray(sampled_grads(rtrlx.learners.make(spec), cell, head, xs, ys))
    assert np.all(np.isfinite(samples))
    spread = samples.std(axis=0)
    assert np.median(spread / (np.abs(exact) + 1e-12)) > 1e-3, "no noise: not a stochastic test"
    # Entries the estimator gets exactly (zero variance) must be exact.
    z = (samples.mean(axis=0) - exact) / np.maximum(spread / np.sqrt(KEYS), 1e-12)
    assert np.mean(np.abs(z) < 5) >= 0.99, f"{np.mean(np.abs(z) < 5):.3f} within 5 SE"
    # The error of the mean shrinks like 1/sqrt(N): 16x the keys, about 4x smaller error.
    small = np.linalg.norm(samples[: KEYS // 16].mean(axis=0) - exact)
    large = np.linalg.norm(samples.mean(axis=0) - exact)
    assert 2.0 < small / large < 8.0, f"error ratio {small / large:.2f} for 16x the keys"


def test_a_biased_learner_fails_the_unbiasedness_check():
    """The check above can fail: an estimator with SnAp-1's bias (on a dense cell) is caught."""
    cell, head, xs, ys = make_problem("rhn")
    exact = exact_grads(cell, head, xs, ys)
    samples = np.asarray(sampled_grads(rtrlx.ok(2), cell, head, xs, ys, n=KEYS))
    snap = flat(rtrlx.sequence_grads(rtrlx.snap(1), cell, head, rtrlx.losses.mse, xs, ys)[1][0])
    se = samples.std(axis=0) / np.sqrt(KEYS)
    # Shift the unbiased samples by SnAp's bias: the test statistic then rejects.
    shifted = samples.mean(axis=0) + (np.asarray(snap) - np.asarray(exact))
    assert np.mean(np.abs((shifted - exact) / se) < 5) < 0.99


def test_ok_has_less_variance_than_kf_rtrl():
    """The OK paper's optimality claim: its reduction has the least variance, so OK(1) < KF."""
    cell, head, xs, ys = make_problem("rhn")
    exact = np.asarray(exact_grads(cell, head, xs, ys))
    variance = {}
    for spec in ("kf_rtrl", "ok:1", "ok:2"):
        samples = np.asarray(sampled_grads(rtrlx.learners.make(spec), cell, head, xs, ys))
        variance[spec] = np.mean(np.sum((samples - exact) ** 2, axis=1)) / np.sum(exact**2)
    assert variance["ok:1"] < 0.8 * variance["kf_rtrl"], variance
    assert variance["ok:2"] < 0.8 * variance["ok:1"], variance


@pytest.mark.parametrize(
    "sigma", [[3.0, 1.0, 0.5, 0.2, 0.1], [1.0, 1.0, 1.0, 1.0], [2.0, 0.3, 0.0], [5.0, 0.0]]
)
def test_optimal_factors_is_unbiased_and_low_rank(sigma):
    """Exact expectation, by enumerating every sign pattern, and rank k - 1."""
    sigma = jnp.asarray(sigma)
    k = sigma.shape[0]
    total = np.zeros((k, k))
    for signs in itertools.product([-1.0, 1.0], repeat=k):
        f = optimal_factors(sigma, jnp.asarray(signs))
        assert f.shape == (k, k - 1)
        total += np.asarray(f @ f.T)
    np.testing.assert_allclose(total / 2**k, np.diag(sigma), atol=1e-12)


def test_optimal_factors_keeps_the_largest_values_exactly():
    sigma = jnp.asarray([10.0, 1.0, 0.9, 0.8])  # 10 is too large to share: kept as it is
    f = optimal_factors(sigma, jnp.asarray([1.0, -1.0, 1.0, -1.0]))
    np.testing.assert_allclose(f[:, 0] ** 2, [10.0, 0, 0, 0], atol=1e-12)


def test_ok_reduce_is_exact_when_the_sum_fits():
    key = jax.random.key(0)
    u = jax.random.normal(key, (2, 2))  # 2 + 1 terms over 2 columns: rank <= 2
    a = jax.random.normal(jax.random.key(1), (2, 4, 5))
    u_new, a_new = jnp.ones(2), jnp.ones((4, 5))
    u2, a2 = ok_reduce(key, u, a, u_new, a_new)
    assert u2.shape == (2, 2) and a2.shape == (2, 4, 5)
    want = jnp.einsum("rk,rsm->ksm", u, a) + u_new[:, None, None] * a_new[None]
    np.testing.assert_allclose(jnp.einsum("rk,rsm->ksm", u2, a2), want, atol=1e-12)


def test_ok_reduce_is_unbiased_by_enumeration():
    """Every sign pattern of one reduction: the mean is the r + 1 term sum, to rounding."""
    u = jax.random.normal(jax.random.key(0), (3, 6))
    a = jax.random.normal(jax.random.key(1), (3, 4, 5))
    u_new, a_new = jnp.arange(6.0), jnp.ones((4, 5))
    want = jnp.einsum("rk,rsm->ksm", u, a) + u_new[:, None, None] * a_new[None]
    keys = jax.random.split(jax.random.key(2), 4000)
    u2, a2 = jax.vmap(ok_reduce, in_axes=(0, None, None, None, None))(keys, u, a, u_new, a_new)
    sums = jnp.einsum("nrk,nrsm->nksm", u2, a2)
    assert sums.shape == (4000, 6, 4, 5)
    # Only 2^4 sign patterns exist: the sample mean is the exact mean up to sampling of them.
    patterns = {}
    signs = jax.vmap(lambda k: jax.random.rademacher(k, (4,), jnp.float64))(keys)
    for i, sgn in enumerate(np.asarray(signs)):
        patterns.setdefault(tuple(sgn), i)
    assert len(patterns) == 16
    mean = jnp.mean(jnp.stack([sums[i] for i in patterns.values()]), axis=0)
    np.testing.assert_allclose(mean, want, atol=1e-10 * float(jnp.abs(want).max()))


def hand_rflo(cell, head, xs, ys, alpha, feedback_matrix):
    """RFLO written out entry by entry for an Elman cell (Murray 2019, eqs. for W)."""
    w, b = np.asarray(cell.weight), np.asarray(cell.bias)
    v, c = np.asarray(head.weight), np.asarray(head.bias)
    n = b.shape[0]
    h = np.zeros(n)
    trace = np.zeros((n, w.shape[1] + 1))
    grad = np.zeros_like(trace)
    for x, y in zip(np.asarray(xs), np.asarray(ys), strict=True):
        a = np.concatenate([h, x, [1.0]])
        z = w @ a[:-1] + b
        for i in range(n):
            for j in range(a.shape[0]):
                trace[i, j] = (1 - alpha) * trace[i, j] + alpha * (1 - np.tanh(z[i]) ** 2) * a[j]
        h = (1 - alpha) * h + alpha * np.tanh(z)
        out = v @ h + c
        error = 2 * (out - y) / y.shape[0]  # d mse / d out
        q = (v.T if feedback_matrix is None else feedback_matrix) @ error
        for i in range(n):
            grad[i] += q[i] * trace[i]
    return grad[:, :-1], grad[:, -1]


@pytest.mark.parametrize("feedback", ["exact", "random"])
def test_rflo_equals_the_hand_derived_rule(feedback):
    alpha = 0.6
    k = jax.random.split(jax.random.key(3), 4)
    cell = rtrlx.cells.Elman(2, 2, alpha=alpha, key=k[0])
    head = eqx.nn.Linear(2, 2, key=k[1])
    xs = jax.random.normal(k[2], (20, 2))
    ys = jax.random.normal(k[3], (20, 2))
    key = jax.random.key(7)
    matrix = None
    if feedback == "random":
        matrix = np.asarray(rtrlx.learners.rflo_feedback(key, 2, 2, xs.dtype))
    want_w, want_b = hand_rflo(cell, head, xs, ys, alpha, matrix)
    learner = rtrlx.rflo(feedback=feedback)
    _, (g, g_head) = rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys, key=key)
    np.testing.assert_allclose(g.weight, want_w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.bias, want_b, rtol=1e-10, atol=1e-14)
    _, (_, g_head_ref) = rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(flat(g_head), flat(g_head_ref), rtol=1e-10)  # the head is exact


def test_rflo_is_biased_where_the_recurrence_matters():
    cell, head, xs, ys = make_problem("elman")
    exact = exact_grads(cell, head, xs, ys)
    got = flat(
        rtrlx.sequence_grads(rtrlx.rflo("exact"), cell, head, rtrlx.losses.mse, xs, ys)[1][0]
    )
    assert float(jnp.linalg.norm(got - exact) / jnp.linalg.norm(exact)) > 1e-3
