"""The (1+1) EA on any linear function (OneMax, BinVal, random weights), simulated exactly.

On OneMax the number of zeros is all that matters (:mod:`rtrlx.evo.onemax`); on other
linear functions it matters which bits are zero. This simulation keeps, per run, a
permutation of the positions whose first ``k`` entries are the zeros. A generation that
flips no zero cannot be accepted with a change, so it skips ahead to the next generation that
flips one: a geometric number of generations at the block's rate. There it draws how many
zeros (``A >= 1``) and ones (``B``) flip, picks them uniformly
without replacement by a partial Fisher-Yates shuffle of the two parts of the permutation,
and keeps the offspring when its fitness is not worse, which moves the flipped bits across
the boundary by swaps. The cost is O(A + B) per such generation, against O(N) for the plain
algorithm. A generation whose rate flips many bits (``n p > DENSE``) is simulated bit by bit
instead.

BinVal's weights ``2^i`` overflow floating point beyond ``n = 1023``: here its offspring is
compared by the highest flipped position, exactly as the weights would compare it, so it
runs at any ``n``.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .onemax import FUNCTIONS, Result, _check, _end_block, _precise
from .rates import NEVER, Policy, RateState

#: Above this many expected flips per generation, a generation is simulated bit by bit.
DENSE = 64.0


class LinearState(NamedTuple):
    """One run: the positions, zeros first, and how many are zeros."""

    perm: Array  # (n,) int32, a permutation of the positions; perm[:k] are the zeros
    k: Array  # int64
    t: Array  # int64, generations done
    rate: RateState
    changes: Array  # int64, generations of this block whose offspring changed fitness
    length: Array  # int64, generations of this block done
    key: Array


def simulate_linear(
    function: str,
    n: int,
    policy: Policy,
    runs: int,
    *,
    key: Array,
    weights: Array | None = None,
    max_generations: int = 2**40,
) -> Result:
    """Runtimes of ``runs`` runs of the (1+1) EA on a linear function of ``n`` bits.

    Args:
        function: ``"onemax"``, ``"binval"`` (weights ``2^i``) or ``"random"`` (weights
            uniform in (0, 1], drawn once from ``key`` and shared by the runs, unless
            ``weights`` gives them).
        n: the number of relevant bits.
        policy: the mutation-rate policy (:mod:`rtrlx.evo.rates`).
        runs: independent runs, each from a uniformly random string.
        key: PRNG key.
        weights: ``(n,)`` positive weights for ``"random"`` (e.g. from
            :func:`rtrlx.evo.linear_weights`); the others ignore it.
        max_generations: a run that has not finished by then stops.

    Returns:
        A :class:`rtrlx.evo.Result` (``events``: loop steps, one per generation that flips
        a zero or is simulated bit by bit).

    Examples:
        >>> import jax
        >>> from rtrlx.evo import rates
        >>> result = simulate_linear("binval", 2000, rates.static(1 / 2000), 20,
        ...                          key=jax.random.key(0))
        >>> bool(result.finished.all())
        True
    """
    _check(n, runs)
    if function not in FUNCTIONS:
        raise ValueError(f"unknown linear function {function!r}; valid: {', '.join(FUNCTIONS)}.")
    with _precise():
        k_w, k_x, k_runs = jax.random.split(key, 3)
        if function == "onemax":
            w = jnp.ones(n)
        elif weights is not None and function == "random":
            w = jnp.asarray(weights, float)
            if w.shape != (n,) or not bool(jnp.all(w > 0)):
                raise ValueError(f"random: weights must be (n,) = ({n},) and > 0.")
        else:
            w = 1.0 - jax.random.uniform(k_w, (n,), dtype=float)
        fresh = functools.partial(_fresh, policy, n)
        state = jax.vmap(fresh)(jax.random.split(k_x, runs), jax.random.split(k_runs, runs))
        final, events = _loop(policy, function == "binval", max_generations)(w, state)
        return Result(np.asarray(final.t), np.asarray(final.k) == 0, int(events))


def _fresh(policy: Policy, n: int, k_x: Array, key: Array) -> LinearState:
    x = jax.random.bernoulli(k_x, 0.5, (n,))
    zero = jnp.zeros((), jnp.int64)
    return LinearState(
        _zeros_first(x), (n - jnp.sum(x)).astype(jnp.int64), zero, policy.init(), zero, zero, key
    )


def _zeros_first(x: Array) -> Array:
    """A permutation of the positions with the zeros of ``x`` first."""
    return jnp.argsort(x, stable=True).astype(jnp.int32)


def _bits(s: LinearState) -> Array:
    """The string ``x`` of a run: its zeros are ``perm[:k]``."""
    n = s.perm.shape[0]
    return jnp.zeros(n, bool).at[s.perm].set(jnp.arange(n) >= s.k)


def _better(w: Array, binval: bool, flips: Array, x: Array) -> tuple[Array, Array]:
    """Whether the offspring ``x ^ flips`` is not worse, and whether its fitness differs."""
    if binval:  # the highest flipped position decides
        top = jnp.max(jnp.where(flips, jnp.arange(x.shape[0]), -1))
        return (top < 0) | ~x[jnp.maximum(top, 0)], top >= 0
    delta = jnp.sum(jnp.where(flips, jnp.where(x, -w, w), 0.0))
    return delta >= 0, delta != 0


def _dense(w: Array, binval: bool, s: LinearState, key: Array) -> LinearState:
    """One generation bit by bit (a high rate)."""
    x = _bits(s)
    flips = jax.random.uniform(key, x.shape, dtype=float) < s.rate.p
    keep, changed = _better(w, binval, flips, x)
    y = jnp.where(keep, x ^ flips, x)
    return s._replace(
        perm=jnp.where(keep, _zeros_first(y), s.perm),
        k=jnp.where(keep, x.shape[0] - jnp.sum(y), s.k).astype(s.k.dtype),
        t=s.t + 1,
        changes=s.changes + changed.astype(s.changes.dtype),
        length=s.length + 1,
    )


def _sparse(
    w: Array, binval: bool, observes: bool, s: LinearState, keys: Array, go: Array
) -> LinearState:
    """Every run (batched): skip to the next generation that flips a zero and run it.

    A run reaches its block's end first if that comes sooner. Runs with ``go`` False pick
    and swap nothing and stay as they are. The picks and swaps loop over the batch's
    longest count with the others idle, so that each iteration touches one entry of each
    permutation.
    """
    event = jax.vmap(functools.partial(_next_event, observes))(s, keys, go)
    a, b, k = event.a, event.b, s.k
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1)
    zero = jnp.zeros_like(s.k, dtype=w.dtype)
    minus = jnp.full_like(s.k, -1, dtype=jnp.int32)

    def pick(i, carry):
        perm, gain, top0, top1 = carry
        return jax.vmap(functools.partial(_pick_one, w, i))(perm, gain, top0, top1, k, a, b, keys)

    perm, gain, top0, top1 = lax.fori_loop(0, jnp.max(a + b), pick, (s.perm, zero, minus, minus))
    keep = ((top0 > top1) if binval else (gain >= 0)) & event.inside & go
    changed = jnp.ones_like(keep) if binval else gain != 0
    swaps = jnp.where(keep, jnp.minimum(a, b), 0)

    def swap(i, perm):
        return jax.vmap(functools.partial(_swap_one, i))(perm, k, a, b, swaps)

    took = jnp.where(go, event.took, 0)
    changes = event.worsened + (changed & event.inside).astype(s.changes.dtype)
    return s._replace(
        perm=lax.fori_loop(0, jnp.max(swaps), swap, perm),
        k=jnp.where(keep, k - a + b, k),
        t=s.t + took,
        changes=s.changes + jnp.where(go, changes, 0),
        length=s.length + took,
    )


class _Event(NamedTuple):
    a: Array  # zeros flipped (>= 1; 0 for a run that does not go)
    b: Array  # ones flipped
    inside: Array  # whether the generation falls inside the rate's block
    took: Array  # generations done (the skipped ones, and the event's if inside)
    worsened: Array  # skipped generations whose offspring was worse (a one flipped)


def _next_event(observes: bool, s: LinearState, key: Array, go: Array) -> _Event:
    """The wait to the next generation that flips a zero, and how many zeros and ones flip."""
    k_w, k_a, k_b, k_c = jax.random.split(key, 4)
    p, k, ones = s.rate.p, s.k, s.perm.shape[0] - s.k
    some_zero = -jnp.expm1(k.astype(float) * jnp.log1p(-p))  # P(A >= 1)
    u = jax.random.uniform(k_w, dtype=float, minval=1e-300, maxval=1.0)
    wait = jnp.ceil(jnp.log(u) / jnp.log1p(-some_zero))
    wait = jnp.clip(jnp.nan_to_num(wait, posinf=float(NEVER)), 1, float(NEVER)).astype(s.t.dtype)
    inside = s.t + wait <= s.rate.end
    span = jnp.where(inside, wait - 1, s.rate.end - s.t)  # generations that flip no zero
    # Those generations change the fitness (for the worse) when they flip a one.
    worsened = jnp.zeros_like(s.changes)
    if observes:  # only a policy that reads the changes pays for this draw
        some_one = -jnp.expm1(ones.astype(float) * jnp.log1p(-p))
        worsened = jax.random.binomial(k_c, span.astype(float), some_one).astype(worsened.dtype)
    a = jnp.where(go, _at_least_one(k_a, k, p), 0)
    b = jnp.where(go, _few(k_b, ones, p), 0)
    return _Event(a, b, inside, span + inside.astype(span.dtype), worsened)


def _few(key: Array, m: Array, p: Array) -> Array:
    """``Bin(m, p)`` for a small mean ``m p`` (at most ``DENSE``), by inversion from 0.

    Sequential search through the distribution function, ``P(j + 1) = P(j) (m - j) p /
    ((j + 1) (1 - p))``: about ``m p`` steps, cheaper than a general binomial sampler. The
    search stops ``40 (1 + sqrt(m p))`` past the mean, where the mass left is below 1e-17.
    """
    u = jax.random.uniform(key, dtype=float)
    mf = m.astype(float)
    first = jnp.exp(mf * jnp.log1p(-p))
    odds = p / (1 - p)
    last = jnp.minimum(mf, jnp.ceil(mf * p + 40 * (1 + jnp.sqrt(mf * p))))

    def more(c):
        j, _, cdf = c
        return (cdf < u) & (j < last)

    def body(c):
        j, pmf, cdf = c
        pmf = pmf * (mf - j) / (j + 1) * odds
        return j + 1, pmf, cdf + pmf

    j, _, _ = lax.while_loop(more, body, (jnp.zeros_like(mf), first, first))
    return j.astype(m.dtype)


def _at_least_one(key: Array, k: Array, p: Array) -> Array:
    """``A ~ Bin(k, p)`` given ``A >= 1``, exactly, in O(1).

    The first of the ``k`` bits to flip is ``J`` with ``P(J = j) ∝ (1 - p)^j p`` on
    ``[0, k)`` (by inverting its distribution function), and the ``k - 1 - J`` bits after it
    flip independently: ``A = 1 + Bin(k - 1 - J, p)``.
    """
    k_j, k_rest = jax.random.split(key)
    u = jax.random.uniform(k_j, dtype=float)
    some = -jnp.expm1(k.astype(float) * jnp.log1p(-p))  # 1 - (1 - p)^k, precise for small k p
    j = jnp.floor(jnp.log1p(-u * some) / jnp.log1p(-p))
    j = jnp.clip(j, 0.0, (k - 1).astype(float)).astype(k.dtype)
    return 1 + _few(k_rest, k - 1 - j, p)


def _pick_one(w: Array, i: Array, perm, gain, top0, top1, k, a, b, key):
    """Pick ``i`` of one run's partial Fisher-Yates shuffle (nothing once ``i >= a + b``).

    The first ``a`` picks move random zeros to ``perm[k - 1], perm[k - 2], ...``, the next
    ``b`` random ones to ``perm[k], perm[k + 1], ...``; the order within each part does not
    matter. Carries the offspring's fitness gain and the highest flipped zero and one.
    """
    active, zero = i < a + b, i < a
    slot = jnp.where(zero, k - 1 - i, k + i - a)
    lo, hi = jnp.where(zero, 0, slot), jnp.where(zero, slot + 1, perm.shape[0])
    other = jax.random.randint(jax.random.fold_in(key, i), (), lo, jnp.maximum(hi, lo + 1))
    slot, other = jnp.where(active, slot, 0), jnp.where(active, other, 0)
    picked = perm[other]
    perm = perm.at[jnp.stack([other, slot])].set(jnp.stack([perm[slot], picked]))
    gain = gain + jnp.where(active, jnp.where(zero, w[picked], -w[picked]), 0.0)
    top0 = jnp.where(active & zero, jnp.maximum(top0, picked), top0)
    top1 = jnp.where(active & ~zero, jnp.maximum(top1, picked), top1)
    return perm, gain, top0, top1


def _swap_one(i: Array, perm: Array, k: Array, a: Array, b: Array, swaps: Array) -> Array:
    """Swap ``i`` after the flips (nothing once ``i >= swaps``).

    ``perm[k - a:k]`` (now ones) and ``perm[k:k + b]`` (now zeros) trade places pairwise from
    the outside in, ``min(a, b)`` swaps, so that ``perm[:k - a + b]`` are the zeros again.
    """
    active = i < swaps
    left, right = jnp.where(active, k - a + i, 0), jnp.where(active, k + b - 1 - i, 0)
    return perm.at[jnp.stack([left, right])].set(jnp.stack([perm[right], perm[left]]))


#: Compiled loops by policy family, BinVal or not, and length limit.
_LOOPS: dict[tuple, Callable] = {}


def _loop(policy: Policy, binval: bool, max_generations: int) -> Callable:
    """The jitted loop for ``policy``'s family, compiled once (sizes and rates are inputs)."""
    name = (policy.family or policy.name, binval, max_generations)
    if name not in _LOOPS:
        _LOOPS[name] = jax.jit(
            functools.partial(_run, policy=policy, binval=binval, max_generations=max_generations)
        )
    return _LOOPS[name]


def _run(w: Array, state: LinearState, *, policy: Policy, binval: bool, max_generations: int):
    def step(s: LinearState) -> LinearState:
        keys = jax.vmap(lambda key: jax.random.split(key, 3))(s.key)
        running = (s.k > 0) & (s.t < max_generations)
        dense = (w.shape[0] * s.rate.p > DENSE) & running
        # Bit-by-bit generations cost O(n): only when some run's rate needs one. They come
        # first, so that each permutation has one chain of updates (changed in place).
        s = lax.cond(
            jnp.any(dense),
            lambda: _pick(dense, jax.vmap(functools.partial(_dense, w, binval))(s, keys[:, 2]), s),
            lambda: s,
        )
        moved = _sparse(w, binval, policy.observes, s, keys[:, 1], running & ~dense)
        return jax.vmap(functools.partial(_end_block, policy))(moved)._replace(key=keys[:, 0])

    def more(carry):
        s, _ = carry
        return jnp.any((s.k > 0) & (s.t < max_generations))

    return lax.while_loop(more, lambda c: (step(c[0]), c[1] + 1), (state, jnp.int64(0)))


def _pick(mask: Array, new: Any, old: Any) -> Any:
    """``new`` for the runs in ``mask``, ``old`` for the others."""

    def where(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(where, new, old)
