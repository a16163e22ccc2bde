"""The (1+1) EA: the operators, the exact fast simulation against the plain one, the theory."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from rtrlx.evo import linear, linear_weights, rates, simulate, simulate_plain, static_law
from rtrlx.evo.exact import expected_runtime
from rtrlx.evo.onemax import _LOOPS, gain, mutate

RUNS = 2000


def test_optimal_schedule_constants():
    beta, a, v = rates.optimal_schedule_constants()
    assert beta == pytest.approx(3.552478, abs=1e-5)
    assert a == pytest.approx(1.544682, abs=1e-5)
    assert math.exp(v) * special.exp1(v) == pytest.approx(1.0)
    assert rates.schedule_runtime_constant(a) == pytest.approx(beta, abs=1e-6)
    for factor in (0.5, 0.9, 1.1, 2.0):  # the optimum is a minimum, flat near it
        assert rates.schedule_runtime_constant(a * factor) > beta


def test_mutation_flips_each_bit_with_probability_p():
    n, p, draws = 20, 0.15, 20_000
    with jax.enable_x64(True):
        x = jnp.zeros(n, bool).at[::3].set(True)
        keys = jax.random.split(jax.random.key(0), draws)
        flips = np.asarray(jax.vmap(lambda k: mutate(k, x, p) ^ x)(keys))
    per_bit = flips.sum(axis=0)  # each ~ Bin(draws, p): chi-square over the bits
    chi2 = np.sum((per_bit - draws * p) ** 2 / (draws * p * (1 - p)))
    assert stats.chi2.sf(chi2, n) > 1e-3
    counts = np.bincount(flips.sum(axis=1), minlength=n + 1)  # flips per offspring ~ Bin(n, p)
    expected = stats.binom.pmf(np.arange(n + 1), n, p) * draws
    keep = expected > 5
    assert (
        stats.chisquare(
            counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum()
        ).pvalue
        > 1e-3
    )


def test_selection_keeps_exactly_the_offspring_that_are_not_worse():
    w = jnp.array([1.0, 2.0, 4.0])
    x = jnp.array([True, False, True])
    better, tie, worse = jnp.array([False, True, True]), x, jnp.array([True, False, False])
    assert gain(w, x, better) > 0 and gain(w, x, tie) == 0 and gain(w, x, worse) < 0
    onemax = jnp.ones(4)
    swap = gain(
        onemax, jnp.array([True, False, True, False]), jnp.array([False, True, True, False])
    )
    assert swap == 0  # a neutral move on OneMax is kept (f(y) >= f(x))
    binval = linear_weights("binval", 60)  # the top bit outweighs all lower ones together
    x = jnp.zeros(60, bool).at[:59].set(True)
    assert gain(binval, x, jnp.zeros(60, bool).at[59].set(True)) > 0


def _agree(a, b):
    """Two runtime samples from one distribution: KS, and the means within 4 standard errors."""
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)
    assert stats.ks_2samp(a, b).pvalue > 1e-3


@pytest.mark.parametrize("n", [8, pytest.param(32, marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "policy",
    ["static:1/n", pytest.param("static:3/n", marks=pytest.mark.slow), "schedule", "adaptive"],
)
def test_fast_simulation_has_the_plain_runtime_distribution(n, policy):
    """The skip-ahead k-chain is exact: its runtimes are distributed as the bit-level EA's."""
    fast = simulate(n, rates.parse(policy, n), RUNS, key=jax.random.key(1))
    plain = simulate_plain(
        linear_weights("onemax", n), rates.parse(policy, n), RUNS, key=jax.random.key(2)
    )
    assert fast.finished.all() and plain.finished.all()
    _agree(fast.runtime.astype(float), plain.runtime.astype(float))


@pytest.mark.parametrize(("n", "c"), [(1, 0.5), (8, 1.0), (32, 1.0), (100, 1.0), (100, 3.0)])
def test_fast_simulation_mean_equals_the_exact_chain(n, c):
    p = min(c / n, 0.25)
    result = simulate(n, rates.static(p), RUNS, key=jax.random.key(3))
    runtime = result.runtime.astype(float)
    exact = expected_runtime(n, p)
    assert abs(runtime.mean() - exact) < 4 * runtime.std() / math.sqrt(RUNS), (
        runtime.mean(),
        exact,
    )


def test_exact_chain_closed_forms():
    assert expected_runtime(1, 0.25) == pytest.approx(2.0)  # 1 / (2 p)
    assert expected_runtime(2, 0.5) == pytest.approx(3.0)  # by hand: E_1 = E_2 = 4
    n = 200  # e n ln n - 1.8925 n + (e/2) ln n + O(1) for p = 1/n
    asymptotic = math.e * n * math.log(n) - 1.8925 * n + math.e / 2 * math.log(n)
    assert expected_runtime(n, 1 / n) == pytest.approx(asymptotic, abs=5)


def test_irrelevant_bits_do_not_change_the_runtime():
    policy = rates.static(1 / 8)
    relevant = simulate_plain(jnp.ones(8), policy, RUNS, key=jax.random.key(4))
    weights = jnp.concatenate([jnp.ones(8), jnp.zeros(24)])  # 24 bits the fitness ignores
    hidden = simulate_plain(weights, policy, RUNS, key=jax.random.key(5))
    _agree(relevant.runtime.astype(float), hidden.runtime.astype(float))


def test_every_linear_function_takes_the_plain_simulation():
    for function in ("binval", "random"):
        w = linear_weights(function, 10, key=jax.random.key(6))
        result = simulate_plain(w, rates.static(0.1), 200, key=jax.random.key(7))
        assert result.finished.all() and 10 < result.runtime.mean() < 200


@pytest.mark.parametrize(
    ("function", "policy"),
    [
        ("binval", "static:1/n"),
        pytest.param("random", "adaptive", marks=pytest.mark.slow),
        pytest.param("onemax", "schedule", marks=pytest.mark.slow),
        pytest.param("binval", "schedule", marks=pytest.mark.slow),
        pytest.param("random", "static:1/n", marks=pytest.mark.slow),
    ],
)
def test_any_linear_function_runs_exactly_fast(function, policy, monkeypatch):
    """The position simulation has the plain EA's runtime distribution on every function.

    Its bit-by-bit path is lowered to ``n p > 2`` here so that both paths take part.
    """
    n = 12
    monkeypatch.setattr(linear, "DENSE", 2.0)
    monkeypatch.setattr(linear, "_LOOPS", {})
    w = linear_weights(function, n, key=jax.random.key(5))
    fast = linear.simulate_linear(
        function, n, rates.parse(policy, n), RUNS, key=jax.random.key(1), weights=w
    )
    plain = simulate_plain(w, rates.parse(policy, n), RUNS, key=jax.random.key(2))
    assert fast.finished.all() and plain.finished.all()
    _agree(fast.runtime.astype(float), plain.runtime.astype(float))


def test_at_least_one_flip_is_the_conditioned_binomial():
    with jax.enable_x64(True):
        draw = jax.jit(jax.vmap(linear._at_least_one, in_axes=(0, None, None)))
        for k, p in [(5, 0.1), (40, 0.02), (3, 0.5)]:
            a = np.asarray(draw(jax.random.split(jax.random.key(k), 20_000), jnp.int64(k), p))
            support = np.arange(1, k + 1)
            expected = stats.binom.pmf(support, k, p) / (1 - stats.binom.pmf(0, k, p))
            counts = np.bincount(a, minlength=k + 1)[1:]
            keep = expected * len(a) >= 5  # the rest pooled into one bin
            observed = np.append(counts[keep], counts[~keep].sum())
            wanted = np.append(expected[keep], expected[~keep].sum()) * len(a)
            observed, wanted = observed[wanted > 0], wanted[wanted > 0]
            assert a.min() >= 1 and stats.chisquare(observed, wanted).pvalue > 1e-3


def test_static_laws_halve_the_rate_and_sum_to_one():
    for law in (static_law.power_law(0.5), static_law.loglog_law(1.0, scales=12)):
        assert law.probs.sum() == pytest.approx(1.0) and (law.probs > 0).all()
        np.testing.assert_allclose(law.rates, 2.0 ** -np.arange(1, len(law.rates) + 1))
    j = np.arange(1, 41)
    np.testing.assert_allclose(static_law.power_law(1.0).probs, j**-2.0 / (j**-2.0).sum())
    assert isinstance(rates.parse("static:pow:0.5", 10), static_law.StaticLaw)
    assert rates.parse("static:loglog:1", 10).name == "static:loglog:1"


def test_chernoff_bound_bounds_the_chance_of_improving():
    """The bound that lets the static-law simulation drop a rate is a bound: >= exact P(A > B)."""
    with jax.enable_x64(True):
        for n, k, p in [(100, 10, 0.3), (1000, 300, 0.05), (1000, 499, 0.5), (60, 5, 0.01)]:
            a, b = np.arange(k + 1), np.arange(n - k + 1)
            exact = stats.binom.pmf(a, k, p) @ stats.binom.cdf(a - 1, n - k, p)
            bound = math.exp(float(static_law._log_chernoff(jnp.int64(k), jnp.int64(n), p)))
            assert exact <= bound * (1 + 1e-9), (n, k, p, exact, bound)
            assert bound < 1 and b.size  # a real bound where k < n - k


@pytest.mark.slow  # 6-12 s at n = 8, 80 s at n = 24
@pytest.mark.parametrize("n", [8, 24])
def test_static_law_simulation_is_the_plain_algorithm_and_the_exact_chain(n, monkeypatch):
    """Exact: the mean of the exact chain mixed over the law, and the plain EA's distribution.

    The tables' reach is lowered here so that all three ways of handling a rate (the short
    table, the long one, a generation on its own) take part at these small sizes.
    """
    law = static_law.power_law(1.0, scales=16)
    monkeypatch.setattr(static_law, "SMALL", (32, 0.3))
    monkeypatch.setattr(static_law, "LONG", (512, 1.5))
    static_law._loop.cache_clear()
    try:
        fast = static_law.simulate(n, law, RUNS, key=jax.random.key(8))
    finally:
        static_law._loop.cache_clear()
    exact = expected_runtime(n, law.rates, law.probs)
    runtime = fast.runtime.astype(float)
    assert fast.finished.all()
    assert abs(runtime.mean() - exact) < 4 * runtime.std() / math.sqrt(RUNS), (
        runtime.mean(),
        exact,
    )
    if n == 8:
        plain = static_law.simulate_plain(jnp.ones(n), law, RUNS, key=jax.random.key(9))
        _agree(runtime, plain.runtime.astype(float))


@pytest.mark.slow  # 9 s
def test_one_compilation_serves_every_size_and_every_static_rate():
    for first, second in [
        ((50, rates.schedule()), (70, rates.schedule())),
        ((50, rates.static(0.1)), (90, rates.static(0.02))),
    ]:
        simulate(*first, 4, key=jax.random.key(0))
        loop = _LOOPS["fast", first[1].family or first[1].name, 2**40]
        traces, loops = loop._cache_size(), len(_LOOPS)
        simulate(*second, 4, key=jax.random.key(1))
        assert loop._cache_size() == traces and len(_LOOPS) == loops


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simulate(0, rates.static(0.1), 4, key=jax.random.key(0)), "n must be a positive"),
        (lambda: simulate(4, rates.static(0.1), 0, key=jax.random.key(0)), "runs must be"),
        (lambda: rates.static(0.7), r"a static rate must be in \(0, 0.5\]"),
        (lambda: rates.parse("static:x", 4), "unknown rate policy 'static:x'; valid: static:P"),
        (lambda: rates.parse("sometimes", 4), "unknown rate policy"),
        (lambda: rates.schedule(-1.0), "must be > 0"),
        (lambda: rates.parse("static:pow:-1", 4), "eps must be > 0"),
        (
            lambda: linear.simulate_linear("sums", 4, rates.static(0.1), 4, key=jax.random.key(0)),
            "unknown linear function 'sums'",
        ),
        (lambda: static_law.power_law(1.0, scales=0), "1 to 60 scales"),
        (lambda: linear_weights("binval", 2000), "overflows"),
        (
            lambda: simulate_plain(-jnp.ones(3), rates.static(0.1), 4, key=jax.random.key(0)),
            ">= 0",
        ),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_rtrlx_ea_prints_writes_and_plots(tmp_path, capsys):
    from rtrlx.cli import main

    out, png = tmp_path / "ea.json", tmp_path / "ea.png"
    argv = ["ea", "--n", "20,40", "--rate", "static:1/n", "--runs", "50"]
    assert main([*argv, "--json", str(out), "--plot", str(png)]) == 0
    assert "runtime / (n ln n)" in capsys.readouterr().out
    saved = __import__("json").loads(out.read_text())
    assert [r["n"] for r in saved["rows"]] == [20, 40] and png.stat().st_size > 10_000
    assert all(r["finished"] == 50 and 1.0 < r["mean"] < 4.0 for r in saved["rows"])
    assert main(["ea", "--rate", "often"]) == 2
    assert "unknown rate policy 'often'" in capsys.readouterr().err
    assert main(["ea", "--function", "binval", "--rate", "static:pow:1"]) == 2
    assert "static:pow:1 runs on onemax only" in capsys.readouterr().err


@pytest.mark.slow  # 6-12 s
def test_rtrlx_ea_runs_binval_and_static_laws(capsys):
    from rtrlx.cli import main

    assert (
        main(["ea", "--function", "binval", "--n", "30", "--rate", "static:1/n", "--runs", "20"])
        == 0
    )
    assert "EA on binval" in capsys.readouterr().out
    assert main(["ea", "--n", "30,60", "--rate", "static:pow:1", "--runs", "20"]) == 0
    assert "grows like (ln n)^gamma" in capsys.readouterr().err
