"""The (1+1) EA on OneMax, simulated exactly and fast: thousands of runs as one ``vmap``.

The unbiased (1+1) EA keeps a bit string ``x``, flips each bit of a copy with probability
``p`` and keeps the copy when its fitness is not worse. On OneMax (the number of ones) the
run is a Markov chain on ``k``, the number of zeros: a generation flips ``A ~ Bin(k, p)``
zeros and ``B ~ Bin(n - k, p)`` ones, and ``k`` becomes ``k - A + B`` when ``A >= B``. So
``k`` moves only when ``A > B``. :func:`simulate` draws the number of generations until that
happens (geometric, since the rate is constant within a policy's block) instead of
simulating each one, whenever ``n p`` is small enough for ``A`` and ``B`` to live in short
exact tables; while the rate is high it simulates generation by generation. Both are exact:
the runtime has the distribution of the plain algorithm's (:func:`simulate_plain`, which
flips bits one by one; ``tests/test_evo.py`` checks they agree).

Irrelevant bits change neither the fitness nor acceptance, so the EA on ``N`` bits of which
``n`` have non-zero weight runs exactly as on those ``n`` bits: ``n`` is the problem's size
here, unknown to every policy but ``static:1/n``.
"""

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .._tree import standard_promotion
from .rates import NEVER, Policy, RateState

#: Exact tables of ``A`` and ``B``: ``(length, the largest n p they serve)``. Beyond its
#: length a table's mass is below 1e-17 (Poisson tails); above the last one a generation
#: is simulated on its own.
TABLES = ((64, 16.0), (512, 350.0))


class RunState(NamedTuple):
    """One run of the EA on OneMax: the zeros left and the policy's block."""

    k: Array  # int64, zeros left (0: optimum found)
    t: Array  # int64, generations done
    rate: RateState
    changes: Array  # int64, generations of this block whose offspring changed fitness
    length: Array  # int64, generations of this block done
    key: Array


class Result(NamedTuple):
    """Runtimes of a batch of runs.

    Attributes:
        runtime: generations until the optimum (NumPy int64, one per run; the initial
            string counts as generation 0, so a run that starts at the optimum has runtime 0).
        finished: whether each run found the optimum within ``max_generations``.
        events: loop steps the simulation took (its cost), the most of any run.
    """

    runtime: np.ndarray
    finished: np.ndarray
    events: int


def _log_binom_pmf(m: Array, p: Array, size: int) -> Array:
    """``log P(X = j)`` for ``X ~ Bin(m, p)`` and ``j < size`` (-inf where ``j > m``).

    By the ratio ``P(j + 1) / P(j) = (m - j) p / ((j + 1) (1 - p))``: one log per entry.
    """
    j = jnp.arange(size, dtype=float)
    m = m.astype(float)
    ratio = jnp.log(jnp.maximum(m - j, 1.0)) - jnp.log(j + 1) + jnp.log(p) - jnp.log1p(-p)
    log_pmf = m * jnp.log1p(-p) + jnp.concatenate([jnp.zeros(1), jnp.cumsum(ratio[:-1])])
    return jnp.where(j <= m, log_pmf, -jnp.inf)


def _generation_odds(k: Array, n: Array, p: Array, size: int) -> tuple[Array, ...]:
    """Per generation: ``(log P(A = a), log P(B = b), P(A > B), P(A < B))`` from tables."""
    log_a = _log_binom_pmf(k, p, size)
    log_b = _log_binom_pmf(n - k, p, size)
    cdf_b = jnp.cumsum(jnp.exp(log_b))
    below = jnp.concatenate([jnp.zeros(1), cdf_b[:-1]])  # P(B < a)
    pa = jnp.exp(log_a)
    better = jnp.sum(pa * below)
    worse = jnp.sum(pa * jnp.clip(1 - cdf_b, 0, 1))
    return log_a, log_b, better, worse


def _end_block(policy: Policy, s: Any) -> Any:
    """A run (fast or plain) with its next rate block once ``t`` reaches the block's end."""
    ended = s.t >= s.rate.end
    rate = jax.tree.map(
        lambda new, old: jnp.where(ended, new, old),
        policy.next_block(s.rate, s.changes, s.length),
        s.rate,
    )
    zero = jnp.zeros_like(s.changes)
    return s._replace(
        rate=rate,
        changes=jnp.where(ended, zero, s.changes),
        length=jnp.where(ended, zero, s.length),
    )


def _draw(key: Array, weights: Array) -> Array:
    """An index drawn with probability proportional to ``weights`` (one uniform)."""
    cdf = jnp.cumsum(weights)
    u = jax.random.uniform(key, dtype=cdf.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), weights.shape[0] - 1)


def _step(n: Array, policy: Policy, max_generations: int) -> Callable[[RunState], RunState]:
    """One loop step of every run (batched): a skip (sparse) or one generation (dense)."""

    def skip(s: RunState, key: Array, size: int) -> RunState:
        k_w, k_a, k_b, k_c = jax.random.split(key, 4)
        log_a, log_b, better, worse = _generation_odds(s.k, n, s.rate.p, size)
        u = jax.random.uniform(k_w, dtype=float, minval=1e-300, maxval=1.0)
        wait = jnp.ceil(jnp.log(u) / jnp.log1p(-better))  # generations to the next A > B
        wait = jnp.clip(jnp.nan_to_num(wait, posinf=float(NEVER)), 1, float(NEVER))
        wait = wait.astype(s.t.dtype)
        inside = s.t + wait <= s.rate.end
        span = jnp.where(inside, wait - 1, s.rate.end - s.t)  # generations with k unchanged
        changes = s.changes + inside.astype(s.changes.dtype)
        if policy.observes:  # the skipped generations whose offspring was worse
            odds = jnp.clip(worse / jnp.maximum(1 - better, 1e-300), 0, 1)
            worsened = jax.random.binomial(k_c, span.astype(float), odds)
            changes = changes + worsened.astype(s.changes.dtype)
        # (A, B) given A > B, each by inverting its table's CDF with one uniform.
        cdf_b = jnp.cumsum(jnp.exp(log_b))
        below = jnp.concatenate([jnp.zeros(1), cdf_b[:-1]])
        a = _draw(k_a, jnp.exp(log_a) * below)
        b = _draw(k_b, jnp.where(jnp.arange(size) < a, jnp.exp(log_b), 0.0))
        took = span + inside.astype(span.dtype)
        return s._replace(
            k=jnp.where(inside, s.k - (a - b).astype(s.k.dtype), s.k),
            t=s.t + took,
            changes=changes,
            length=s.length + took,
        )

    def dense(s: RunState, key: Array) -> RunState:
        k_a, k_b = jax.random.split(key)
        a = jax.random.binomial(k_a, s.k.astype(float), s.rate.p).astype(s.k.dtype)
        b = jax.random.binomial(k_b, (n - s.k).astype(float), s.rate.p).astype(s.k.dtype)
        return s._replace(
            k=jnp.where(a >= b, s.k - a + b, s.k),
            t=s.t + 1,
            changes=s.changes + (a != b).astype(s.changes.dtype),
            length=s.length + 1,
        )

    def pick(mask: Array, new: RunState, old: RunState) -> RunState:
        def where(a, b):
            return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

        return jax.tree.map(where, new._replace(key=old.key), old)

    def step(s: RunState) -> RunState:
        keys = jax.vmap(lambda k: jax.random.split(k, 2 + len(TABLES)))(s.key)
        running = (s.k > 0) & (s.t < max_generations)
        flips = n * s.rate.p
        (small, small_rate), *larger = TABLES
        moved = jax.vmap(functools.partial(skip, size=small))(s, keys[:, 1])
        # Larger tables and binomial draws are costly: only when some run needs them.
        served, way = small_rate, 2
        for size, rate in [*larger, (None, jnp.inf)]:
            mask = (flips > served) & (flips <= rate) & running
            go = functools.partial(skip, size=size) if size else dense
            moved = lax.cond(
                jnp.any(mask),
                lambda m=mask, g=go, w=way, prev=moved: pick(m, jax.vmap(g)(s, keys[:, w]), prev),
                lambda prev=moved: prev,
            )
            served, way = rate, way + 1
        moved = jax.vmap(functools.partial(_end_block, policy))(moved)
        return pick(running, moved, s)._replace(key=keys[:, 0])

    return step


def simulate(
    n: int, policy: Policy, runs: int, *, key: Array, max_generations: int = 2**40
) -> Result:
    """Runtimes of ``runs`` independent runs of the (1+1) EA on OneMax with ``n`` bits.

    Each run starts from a uniformly random string. All runs advance together in one
    ``lax.while_loop`` (one ``vmap``) until every run has found the optimum.

    Args:
        n: the number of relevant bits.
        policy: the mutation-rate policy (:mod:`rtrlx.evo.rates`).
        runs: independent runs.
        key: PRNG key.
        max_generations: a run that has not finished by then stops (``finished`` False).

    Returns:
        A :class:`Result`.

    Examples:
        >>> import jax
        >>> from rtrlx.evo import rates
        >>> result = simulate(100, rates.static(0.01), 200, key=jax.random.key(0))
        >>> bool(result.finished.all()), 1000 < float(result.runtime.mean()) < 1400
        (True, True)
    """
    _check(n, runs)
    with _precise():
        return _simulate(n, policy, runs, key, max_generations)


@contextlib.contextmanager
def _precise() -> Iterator[None]:
    """64-bit counts and rates, and NumPy's promotion of int and float (whatever the user set)."""
    with jax.enable_x64(True), standard_promotion():
        yield


def _check(n: int, runs: int) -> None:
    for name, value in (("n", n), ("runs", runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _simulate(n: int, policy: Policy, runs: int, key: Array, max_generations: int) -> Result:
    k_init, k_runs = jax.random.split(key)
    k0 = jax.random.binomial(k_init, float(n), 0.5, shape=(runs,)).astype(jnp.int64)
    state = jax.vmap(lambda k, key: _fresh(policy, k, key))(k0, jax.random.split(k_runs, runs))
    final, events = _compiled(policy, max_generations, "fast")(jnp.int64(n), state)
    return Result(np.asarray(final.t), np.asarray(final.k == 0), int(events))


#: Compiled loops by policy family (its ``next_block``) and length limit.
_LOOPS: dict[tuple, Callable] = {}


def _compiled(policy: Policy, max_generations: int, kind: str) -> Callable:
    """The jitted loop of ``kind`` ("fast" or "plain") for ``policy``, compiled once.

    The problem (``n`` or the weights) and the runs' states (the first block's rate
    included) are arguments, so one compilation serves every size, and every member of a
    policy family (every static rate).
    """
    key = (kind, policy.family or policy.name, max_generations)
    if key not in _LOOPS:
        loop = _fast_loop if kind == "fast" else _plain_loop
        _LOOPS[key] = jax.jit(
            functools.partial(loop, policy=policy, max_generations=max_generations)
        )
    return _LOOPS[key]


def _fast_loop(n: Array, state: RunState, *, policy: Policy, max_generations: int):
    step = _step(n, policy, max_generations)

    def more(carry):
        s, _ = carry
        return jnp.any((s.k > 0) & (s.t < max_generations))

    return lax.while_loop(more, lambda c: (step(c[0]), c[1] + 1), (state, jnp.int64(0)))


def _fresh(policy: Policy, k: Array, key: Array) -> RunState:
    zero = jnp.zeros((), jnp.int64)
    return RunState(k, zero, policy.init(), zero, zero, key)


class PlainState(NamedTuple):
    """One run of the bit-level simulation."""

    x: Array  # (n,) bool, the current string
    t: Array
    rate: RateState
    changes: Array
    length: Array
    key: Array


def simulate_plain(
    weights: Array, policy: Policy, runs: int, *, key: Array, max_generations: int = 10**7
) -> Result:
    """The plain (1+1) EA, bit by bit, on the linear function ``x -> weights . x``.

    Every generation draws one uniform number per bit (:func:`mutate`) and keeps the
    offspring when it is not worse (:func:`gain`). This is the reference that
    :func:`simulate` is checked against, and it runs any non-negative weights: OneMax (all
    ones), BinVal (``2^i``) or random ones (:func:`linear_weights`), with irrelevant bits
    (weight 0) among them if wanted. A run ends when every relevant bit is one. Cost O(N)
    per generation, so it is for small ``N``.

    Args:
        weights: ``(N,)`` weights, > 0 for the relevant bits, 0 for the others.
        policy: the mutation-rate policy.
        runs: independent runs, each from a uniformly random string.
        key: PRNG key.
        max_generations: a run that has not finished by then stops.

    Returns:
        A :class:`Result` (``events`` is the generations simulated, the most of any run).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from rtrlx.evo import rates
        >>> result = simulate_plain(jnp.ones(1), rates.static(0.25), 4000, key=jax.random.key(0))
        >>> round(float(result.runtime.mean()))  # E[T] = 1 / (2 p) for one bit
        2
    """
    _check(int(weights.shape[0]), runs)
    with _precise():
        w = jnp.asarray(weights, float)
        if not (bool(jnp.all(w >= 0)) and bool(jnp.any(w > 0))):
            raise ValueError(
                "simulate_plain: the weights must be >= 0 with at least one > 0 (the "
                "relevant bits; a zero weight is a bit the fitness ignores)."
            )
        k_init, k_runs = jax.random.split(key)
        x0 = jax.random.bernoulli(k_init, 0.5, (runs, w.shape[0]))
        zero = jnp.zeros((), jnp.int64)
        state = jax.vmap(lambda x, k: PlainState(x, zero, policy.init(), zero, zero, k))(
            x0, jax.random.split(k_runs, runs)
        )
        final, events = _compiled(policy, max_generations, "plain")(w, state)
        done = jnp.all(final.x | ~(w > 0)[None, :], axis=1)
        return Result(np.asarray(final.t), np.asarray(done), int(events))


def _plain_loop(w: Array, state: PlainState, *, policy: Policy, max_generations: int):
    step = jax.vmap(_plain_step(w, policy, max_generations))

    def more(carry):
        s, _ = carry
        return jnp.any(~jnp.all(s.x | ~(w > 0)[None, :], axis=1) & (s.t < max_generations))

    return lax.while_loop(more, lambda c: (step(c[0]), c[1] + 1), (state, jnp.int64(0)))


def mutate(key: Array, x: Array, p: Array | float) -> Array:
    """The offspring: ``x`` with each bit flipped independently with probability ``p``."""
    return x ^ (jax.random.uniform(key, x.shape, dtype=float) < p)


def gain(weights: Array, x: Array, y: Array) -> Array:
    """``f(y) - f(x)`` for ``f = weights . x``; the (1+1) EA keeps ``y`` when it is >= 0.

    A difference, not two sums: for BinVal the lower bits cannot outweigh the highest
    flipped one, and the difference keeps its sign.
    """
    return jnp.dot(weights, y.astype(weights.dtype) - x.astype(weights.dtype))


def _plain_step(w: Array, policy: Policy, max_generations: int) -> Callable:
    relevant = w > 0

    def step(s: PlainState) -> PlainState:
        key, k_flip = jax.random.split(s.key)
        running = ~jnp.all(s.x | ~relevant) & (s.t < max_generations)
        y = mutate(k_flip, s.x, s.rate.p)
        delta = gain(w, s.x, y)
        t, length = s.t + 1, s.length + 1
        changes = s.changes + (delta != 0).astype(s.changes.dtype)
        moved = PlainState(jnp.where(delta >= 0, y, s.x), t, s.rate, changes, length, s.key)
        moved = _end_block(policy, moved)
        kept = jax.tree.map(lambda new, old: jnp.where(running, new, old), moved, s)
        return kept._replace(key=key)

    return step


#: The linear functions ``rtrlx ea`` and :func:`linear_weights` know.
FUNCTIONS = ("onemax", "binval", "random")


def linear_weights(function: str, n: int, *, key: Array | None = None) -> Array:
    """The weights of a linear function of ``n`` relevant bits.

    ``onemax``: all 1. ``binval``: ``2^i`` (as float64, exact up to ``n = 1023``).
    ``random``: uniform in (0, 1], drawn with ``key``.

    Examples:
        >>> linear_weights("binval", 4).tolist()
        [1.0, 2.0, 4.0, 8.0]
    """
    with jax.enable_x64(True):
        if function == "onemax":
            return jnp.ones(n)
        if function == "binval":
            if n > 1023:
                raise ValueError(f"binval: 2^i overflows float64 beyond n = 1023, got n = {n}.")
            return 2.0 ** jnp.arange(n, dtype=float)
        if function == "random":
            if key is None:
                raise ValueError("linear_weights('random', ...) needs a key.")
            return 1.0 - jax.random.uniform(key, (n,), dtype=float)
    raise ValueError(f"unknown linear function {function!r}; valid: {', '.join(FUNCTIONS)}.")
