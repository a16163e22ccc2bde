"""Static rate laws for an unknown ``n``: a fresh rate every generation, from one fixed law.

A single static rate cannot serve every ``n`` (``p = c/n`` needs ``n``), so a static
algorithm for an unknown number of relevant bits draws the rate of each generation
independently from a fixed law over scales. With ``p = 2^-j`` and ``P(j) = q_j``, only the
scales near ``j = log2 n`` make progress, so the runtime is about ``n ln n ln 2 / q_{log2 n}``
(up to a bounded factor): ``q_j ∝ j^-(1+eps)`` gives ``O(n (ln n)^(2+eps))``, the static
optimum that arXiv 1808.05566 quotes, and ``q_j ∝ 1/(j (1 + ln j)^(1+eps))`` a little better.
These two laws are rtrlx's reading of that claim (the paper's text was not available here).

:func:`simulate` runs the EA on OneMax under such a law exactly and fast. The chain on the
number of zeros ``k`` is time-homogeneous, so it draws the number of generations until ``k``
falls (geometric) and the scale and the flips of that generation, from exact tables for every
scale at which a generation flips a few hundred zeros at most (``k p <= 350``). A scale that
flips more is simulated generation by generation, unless a Chernoff bound puts its chance of
improving below ``1e-20`` per generation; then it is counted as never improving (the
runtime's distribution moves by less than ``1e-20`` per generation simulated).
"""

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .onemax import Result, _check, _draw, _precise

#: Exact tables of the flips: length, and the largest ``k p`` (expected zeros flipped) they
#: serve; beyond its length a table's mass is below 1e-15 (Poisson tails). The long table
#: serves at most WIDE rates (the rates between the two at one ``k``: 7 for halving rates).
SMALL, LONG, WIDE = (32, 4.0), (512, 350.0), 8
#: A scale whose chance of improving is below this per generation never improves here.
NEGLIGIBLE = 1e-20


class StaticLaw(NamedTuple):
    """A law over mutation rates: generation ``t`` uses ``rates[j]`` with probability ``probs[j]``.

    Attributes:
        name: the law as ``rtrlx ea --rate`` names it.
        rates: ``(J,)`` rates in ``(0, 1/2]``.
        probs: ``(J,)`` probabilities, summing to 1.
    """

    name: str
    rates: np.ndarray
    probs: np.ndarray


def power_law(eps: float, *, scales: int = 40) -> StaticLaw:
    """``p = 2^-j`` with ``P(j) ∝ j^-(1+eps)``, ``j = 1..scales``: runtime ``O(n (ln n)^(2+eps))``.

    Args:
        eps: the tail's exponent beyond 1 (> 0; smaller is better asymptotically and worse
            for small ``n``).
        scales: the number of scales (40: rates down to 2^-40 ≈ 1e-12, enough for ``n`` up
            to about 2^35; the law is normalised over them).

    Examples:
        >>> law = power_law(1.0)
        >>> law.name, float(law.rates[0]), round(float(law.probs[0]), 3)
        ('static:pow:1', 0.5, 0.617)
    """
    if not eps > 0:
        raise ValueError(f"static:pow: eps must be > 0, got {eps}.")
    j = np.arange(1, _scales(scales) + 1, dtype=float)
    return _law(f"static:pow:{eps:g}", j, j ** -(1 + eps))


def loglog_law(eps: float, *, scales: int = 40) -> StaticLaw:
    """``p = 2^-j`` with ``P(j) ∝ 1 / (j (1 + ln j)^(1+eps))``, ``j = 1..scales``.

    Runtime ``O(n (ln n)^2 (ln ln n)^(1+eps))``: the heaviest tail that still sums.

    Examples:
        >>> loglog_law(0.5).name
        'static:loglog:0.5'
    """
    if not eps > 0:
        raise ValueError(f"static:loglog: eps must be > 0, got {eps}.")
    j = np.arange(1, _scales(scales) + 1, dtype=float)
    return _law(f"static:loglog:{eps:g}", j, 1 / (j * (1 + np.log(j)) ** (1 + eps)))


def _scales(scales: int) -> int:
    if not 1 <= scales <= 60:
        raise ValueError(f"a static law needs 1 to 60 scales, got {scales}.")
    return scales


def _law(name: str, j: np.ndarray, weights: np.ndarray) -> StaticLaw:
    return StaticLaw(name, 2.0**-j, weights / weights.sum())


def simulate(
    n: int, law: StaticLaw, runs: int, *, key: Array, max_generations: int = 2**50
) -> Result:
    """Runtimes of ``runs`` runs of the (1+1) EA on OneMax, each generation's rate from ``law``.

    Args:
        n: the number of relevant bits.
        law: the rate law (:func:`power_law`, :func:`loglog_law`).
        runs: independent runs, each from a uniformly random string.
        key: PRNG key.
        max_generations: a run that has not finished by then stops.

    Returns:
        A :class:`rtrlx.evo.Result` (``events``: loop steps, one per improvement or per
        generation simulated on its own).

    Examples:
        >>> result = simulate(100, power_law(1.0), 200, key=jax.random.key(0))
        >>> bool(result.finished.all()), 5_000 < float(result.runtime.mean()) < 20_000
        (True, True)
    """
    _check(n, runs)
    with _precise():
        k_init, k_runs = jax.random.split(key)
        k0 = jax.random.binomial(k_init, float(n), 0.5, shape=(runs,)).astype(jnp.int64)
        zero = jnp.zeros_like(k0)
        final_k, final_t, events = _loop(max_generations)(
            jnp.int64(n),
            jnp.asarray(law.rates, float),
            jnp.asarray(law.probs, float),
            k0,
            zero,
            jax.random.split(k_runs, runs),
        )
        return Result(np.asarray(final_t), np.asarray(final_k) == 0, int(events))


def _log_choose_prefix(m: Array, size: int) -> Array:
    """``log C(m, i)`` for ``i < size`` (-inf where ``i > m``)."""
    i = jnp.arange(size, dtype=float)
    steps = jnp.log(jnp.maximum(m - i, 1.0)) - jnp.log(i + 1)
    log_c = jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps[:-1])])
    return jnp.where(i <= m, log_c, -jnp.inf)


def _tables(k: Array, n: Array, rates: Array, size: int) -> tuple[Array, Array, Array]:
    """Per rate: ``P(A = a)`` and ``P(B = b)`` for ``a, b < size``, and ``P(A > B)``.

    ``A ~ Bin(k, p)`` (the zeros flipped) and ``B ~ Bin(n - k, p)`` (the ones); ``P(A > B)``
    is exact when ``A``'s mass beyond the table is negligible, whatever ``B``'s.
    """
    i = jnp.arange(size, dtype=float)[None, :]
    log_p, log_q = jnp.log(rates)[:, None], jnp.log1p(-rates)[:, None]

    def pmf(m: Array) -> Array:
        m = m.astype(float)
        return jnp.exp(_log_choose_prefix(m, size)[None, :] + i * (log_p - log_q) + m * log_q)

    pa, pb = pmf(k), pmf(n - k)
    below = jnp.cumsum(pb, axis=-1) - pb  # P(B < a)
    return pa, pb, jnp.sum(pa * below, axis=1)


def _improvement(key: Array, pa: Array, pb: Array) -> Array:
    """``A - B`` given ``A > B``, from the tables of one rate (one uniform each)."""
    k_a, k_b = jax.random.split(key)
    a = _draw(k_a, pa * (jnp.cumsum(pb) - pb))
    return a - _draw(k_b, jnp.where(jnp.arange(pb.shape[0]) < a, pb, 0.0))


def _log_chernoff(k: Array, n: Array, p: Array | float) -> Array:
    """``log`` of Chernoff's bound on ``P(A > B)``, ``A ~ Bin(k, p)``, ``B ~ Bin(n - k, p)``.

    ``P(A - B >= 1) <= min_x (1 - p + p x)^k (1 - p + p / x)^m`` (``m = n - k``), whose
    minimiser solves ``(1 - p) k x^2 + p (k - m) x - (1 - p) m = 0``; 0 (no bound) when
    ``k >= m``.
    """
    k, m = k.astype(float), (n - k).astype(float)
    a, b, c = (1 - p) * k, p * (k - m), -(1 - p) * m
    x = (-b + jnp.sqrt(b * b - 4 * a * c)) / (2 * jnp.maximum(a, 1e-300))
    bound = k * jnp.log1p(p * (x - 1)) + m * jnp.log1p(p * (1 / x - 1))
    return jnp.where(k < m, jnp.minimum(bound, 0.0), 0.0)


def _step(n: Array, rates: Array, probs: Array, max_generations: int) -> Callable:
    """One loop step of every run: skip to the next improvement or to a dense generation."""

    def plan(k: Array, t: Array, key: Array):
        k_w, k_j, k_small, k_big = jax.random.split(key, 4)
        flips = k * rates  # expected zeros flipped, falling with the index (rates fall)
        small, (pa, pb, better) = flips <= SMALL[1], _tables(k, n, rates, SMALL[0])
        # The few rates between the tables (at most WIDE of them) get the long one.
        first = jnp.clip(jnp.sum(flips > LONG[1]), 0, max(rates.shape[0] - WIDE, 0))
        wide = lax.dynamic_slice_in_dim(rates, first, min(WIDE, rates.shape[0]))
        pa_l, pb_l, better_l = _tables(k, n, wide, LONG[0])
        index = jnp.arange(rates.shape[0]) - first
        inside = (index >= 0) & (index < wide.shape[0])
        long = ~small & inside & (flips <= LONG[1])
        better = jnp.where(long, better_l[jnp.clip(index, 0, wide.shape[0] - 1)], better)
        tabled = small | long
        dense = ~tabled & (_log_chernoff(k, n, rates) > math.log(NEGLIGIBLE))
        weights = jnp.where(tabled, probs * better, jnp.where(dense, probs, 0.0))
        event = jnp.sum(weights)  # per generation: an improvement, or a dense rate
        u = jax.random.uniform(k_w, dtype=float, minval=1e-300, maxval=1.0)
        wait = jnp.ceil(jnp.log(u) / jnp.log1p(-jnp.minimum(event, 1 - 1e-16)))
        wait = jnp.clip(jnp.nan_to_num(wait, posinf=2.0**62), 1, 2.0**62).astype(t.dtype)
        j = _draw(k_j, weights)
        w = jnp.clip(j - first, 0, wide.shape[0] - 1)
        drop = jnp.where(
            small[j], _improvement(k_small, pa[j], pb[j]), _improvement(k_big, pa_l[w], pb_l[w])
        )
        # (event is 0 only if every rate's chance underflows: then nothing moves.)
        drop = jnp.where(dense[j] | (event <= 0), 0, drop).astype(k.dtype)
        return k - drop, t + wait, dense[j], j

    def generation(k: Array, p: Array, key: Array) -> Array:
        k_a, k_b = jax.random.split(key)
        a = jax.random.binomial(k_a, k.astype(float), p).astype(k.dtype)
        b = jax.random.binomial(k_b, (n - k).astype(float), p).astype(k.dtype)
        return jnp.where(a >= b, k - a + b, k)

    def step(k: Array, t: Array, keys: Array) -> tuple[Array, Array, Array]:
        split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)
        running = (k > 0) & (t < max_generations)
        new_k, new_t, dense, j = jax.vmap(plan)(k, t, split[:, 1])
        new_k = lax.cond(
            jnp.any(dense & running),
            lambda: jnp.where(dense, jax.vmap(generation)(k, rates[j], split[:, 2]), new_k),
            lambda: new_k,
        )
        return jnp.where(running, new_k, k), jnp.where(running, new_t, t), split[:, 0]

    return step


@functools.cache
def _loop(max_generations: int) -> Callable:
    """The jitted loop (one compilation per length limit serves every ``n`` and law)."""

    def loop(n, rates, probs, k, t, keys):
        step = _step(n, rates, probs, max_generations)

        def more(carry):
            k, t, _, _ = carry
            return jnp.any((k > 0) & (t < max_generations))

        def body(carry):
            k, t, keys, events = carry
            return (*step(k, t, keys), events + 1)

        k, t, _, events = lax.while_loop(more, body, (k, t, keys, jnp.int64(0)))
        return k, t, events

    return jax.jit(loop)


def simulate_plain(
    weights: Array, law: StaticLaw, runs: int, *, key: Array, max_generations: int = 10**7
) -> Result:
    """The plain (1+1) EA under ``law``, bit by bit, on ``x -> weights . x`` (the reference).

    Every generation draws its rate from ``law``, one uniform number per bit, and keeps the
    offspring when it is not worse. Cost O(N) per generation: for small ``N``.

    Examples:
        >>> result = simulate_plain(jnp.ones(1), power_law(1.0), 2000, key=jax.random.key(0))
        >>> bool(result.finished.all())
        True
    """
    from .onemax import gain, mutate

    _check(int(weights.shape[0]), runs)
    with _precise():
        w = jnp.asarray(weights, float)
        rates, probs = jnp.asarray(law.rates, float), jnp.asarray(law.probs, float)
        relevant = w > 0

        def unfinished(x: Array) -> Array:
            return ~jnp.all(x | ~jnp.broadcast_to(relevant, x.shape), axis=-1)

        def one(x: Array, t: Array, key: Array) -> tuple[Array, Array, Array]:
            key, k_j, k_flip = jax.random.split(key, 3)
            y = mutate(k_flip, x, rates[_draw(k_j, probs)])
            go = unfinished(x) & (t < max_generations)
            keep = go & (gain(w, x, y) >= 0)
            return jnp.where(keep, y, x), t + go.astype(t.dtype), key

        def body(carry):
            x, t, keys, events = carry
            return (*jax.vmap(one)(x, t, keys), events + 1)

        def more(carry):
            x, t, _, _ = carry
            return jnp.any(unfinished(x) & (t < max_generations))

        k_init, k_runs = jax.random.split(key)
        x0 = jax.random.bernoulli(k_init, 0.5, (runs, w.shape[0]))
        t0 = jnp.zeros(runs, jnp.int64)
        x, t, _, events = jax.jit(lambda c: lax.while_loop(more, body, c))(
            (x0, t0, jax.random.split(k_runs, runs), jnp.int64(0))
        )
        return Result(np.asarray(t), np.asarray(~unfinished(x)), int(events))
