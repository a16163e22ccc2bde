"""Mutation-rate policies of the (1+1) EA, as blocks of generations at one rate.

A policy hands out the rate block by block: :class:`RateState` holds the current block's rate
``p`` and ``end``, the number of generations done when the block ends. At the end the policy
sees how many of the block's generations produced an offspring of a different fitness
(``changes``) and how many there were (``length``), and returns the next block. Holding the
rate over a block is what lets :func:`rtrlx.evo.onemax.simulate` skip ahead exactly; the
plain simulations use the same blocks, so both run the same policy.

Generations are counted from 1: the block that starts after ``t`` generations serves
generation ``t + 1`` first. Generation counts are 64-bit: the policies run under
``jax.enable_x64(True)``, which the simulations turn on themselves.
"""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax.numpy as jnp
from jax import Array

if TYPE_CHECKING:
    from .static_law import StaticLaw

#: ``end`` of a block that never ends (a static rate).
NEVER = 2**62
#: The largest rate any policy uses (a higher rate only makes the EA worse).
MAX_RATE = 0.5


class RateState(NamedTuple):
    """The current block: its rate, where it ends, and the policy's own number."""

    p: Array  # float, the rate of every generation in the block
    end: Array  # int, generations done when the block ends
    memo: Array  # float, whatever the policy carries between blocks (0 when nothing)


class Policy(NamedTuple):
    """A mutation-rate policy: the first block, and the next block from the last one.

    Attributes:
        name: the policy as ``rtrlx ea --rate`` names it.
        init: ``init() -> RateState``: the block starting at generation 1.
        next_block: ``next_block(state, changes, length) -> RateState``: the block after
            ``state``'s, given the number of its generations whose offspring had a different
            fitness than the parent (``changes``) out of ``length``.
        observes: whether ``next_block`` reads ``changes`` (the simulation counts them only
            then).
        family: policies of one family share ``next_block`` and differ only in ``init``'s
            values, so one compiled simulation serves them all (default: the name).
    """

    name: str
    init: Callable[[], RateState]
    next_block: Callable[[RateState, Array | int, Array | int], RateState]
    observes: bool = False
    family: str = ""


def optimal_schedule_constants() -> tuple[float, float, float]:
    """The optimal schedule's constants ``(beta, a, v)`` of arXiv 1808.05566.

    A schedule ``p_t = a ln t / t`` finishes a linear function of ``n`` relevant bits in
    ``(1 + o(1)) S(a) n ln n`` generations, where ``S`` solves ``a E1(a / S) = 1`` (``E1``
    the exponential integral): at ``t = s n ln n`` the rate is ``a / (s n)``, and the
    progress ``p e^{-np}`` summed to ``S n ln n`` must reach ``ln n``. With ``v = a / S``,
    ``S = 1 / (v E1(v))``, smallest where ``E1(v) = e^{-v}``; then ``a = e^v`` and
    ``beta = S = e^v / v``.

    Returns:
        ``(beta, a, v)``: 3.552478..., 1.544682..., 0.434818....

    Examples:
        >>> beta, a, v = optimal_schedule_constants()
        >>> round(beta, 5), round(a, 5), round(v, 5)
        (3.55248, 1.54468, 0.43482)

    References:
        Einarsson, Gauy, Lengler, Meier, Mujika, Steger, Weissenberger. The linear hidden
        subset problem for the (1+1) EA with scheduled and adaptive mutation rates. GECCO
        2018 / TCS 2019. https://arxiv.org/abs/1808.05566
    """
    from scipy.optimize import brentq
    from scipy.special import exp1

    v = float(brentq(lambda v: math.exp(v) * exp1(v) - 1.0, 0.05, 5.0, xtol=1e-15))  # type: ignore[arg-type]
    return math.exp(v) / v, math.exp(v), v


def schedule_runtime_constant(a: float) -> float:
    """``S(a)``: runtime / (n ln n) of the schedule ``a ln t / t`` as ``n`` grows.

    Examples:
        >>> round(schedule_runtime_constant(1.544682), 4)
        3.5525
    """
    from scipy.optimize import brentq
    from scipy.special import exp1

    return float(brentq(lambda s: a * exp1(a / s) - 1.0, 1e-3, 1e6, xtol=1e-13))  # type: ignore[arg-type]


def static(p: float, name: str | None = None) -> Policy:
    """The same rate ``p`` at every generation (``static:0.001``; ``1/n`` when ``n`` is known).

    Examples:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     print(static(0.01).init().p.item())
        0.01
    """
    if not 0 < p <= MAX_RATE:
        raise ValueError(f"a static rate must be in (0, {MAX_RATE}], got {p}.")

    def init() -> RateState:
        return RateState(jnp.asarray(p, float), jnp.asarray(NEVER), jnp.asarray(0.0))

    return Policy(name or f"static:{p:g}", init, _same_block, family="static")


def _same_block(state: RateState, changes: Array | int, length: Array | int) -> RateState:
    del changes, length
    return state


def schedule(a: float | None = None, *, delta: float = 1e-2) -> Policy:
    """The paper's schedule ``p_t = a ln t / t``, optimal at ``a = 1.5447`` (the default).

    The rate is held over geometric blocks: the block that starts after ``t0`` generations
    has the rate of generation ``t0 + 1`` and ends at ``max(t0 + 1, floor(t0 (1 + delta)))``.
    Generations 1 and 2 (``ln t / t`` rises until ``t = e``) and any generation whose rate
    would pass 1/2 use 1/2. Those are rtrlx's choices; the paper's claim is asymptotic.

    Args:
        a: the schedule's constant (default: the optimal ``a`` of
            :func:`optimal_schedule_constants`).
        delta: the blocks' relative length (0 < delta <= 0.1).

    Examples:
        >>> import jax
        >>> s = schedule()
        >>> with jax.enable_x64(True):
        ...     state = s.init()
        ...     for _ in range(5):
        ...         state = s.next_block(state, 0, 1)
        >>> int(state.end), round(float(state.p), 4)
        (6, 0.4613)
    """
    if a is None:
        a = optimal_schedule_constants()[1]
    if not a > 0:
        raise ValueError(f"the schedule's constant a must be > 0, got {a}.")
    if not 0 < delta <= 0.1:
        raise ValueError(f"the schedule's block length delta must be in (0, 0.1], got {delta}.")

    def block(t0: Array) -> RateState:
        g = (t0 + 1).astype(float)
        p = jnp.where(g >= 3, jnp.minimum(MAX_RATE, a * jnp.log(g) / g), MAX_RATE)
        end = jnp.maximum(t0 + 1, jnp.floor(t0.astype(float) * (1 + delta)).astype(t0.dtype))
        return RateState(p, end, jnp.asarray(0.0))

    return Policy(
        f"schedule:{a:.6g}" + ("" if delta == 1e-2 else f",delta={delta:g}"),
        lambda: block(jnp.asarray(0, jnp.asarray(NEVER).dtype)),
        lambda s, c, n: block(s.end),
    )


def adaptive(*, shortest: int = 64) -> Policy:
    """An adaptive rate (rtrlx's rule): ``1/n`` for ``n`` estimated from fitness changes.

    The paper proves that a rate adapted to the run's history reaches ``(1 + o(1)) e n ln n``,
    as if ``n`` were known; this is rtrlx's rule of that kind, not the paper's own (whose
    text was not available here). The rate is held over phases of ``max(shortest,
    ceil(ln(t)^2))`` generations. An offspring's fitness differs from its parent's when a
    relevant bit flips (for OneMax, unless as many ones as zeros flip), with probability
    ``1 - (1 - p)^n``; from the phase's fraction ``r`` of such generations the rule takes
    ``n = ln(1 - r) / ln(1 - p)`` and sets ``p = 1 / n``. It halves ``p`` when nearly every
    generation changed (``r > 1 - e^-3``: the estimate is unreliable and ``p`` far too
    high) and doubles it when none did. It starts at 1/2.

    Args:
        shortest: the shortest phase, in generations.

    Examples:
        >>> import jax
        >>> policy = adaptive()
        >>> with jax.enable_x64(True):  # every offspring of the first phase changed
        ...     print(float(policy.next_block(policy.init(), 64, 64).p))
        0.25
    """
    if shortest < 1:
        raise ValueError(f"adaptive: the shortest phase must be >= 1 generation, got {shortest}.")

    def length(t: Array) -> Array:
        return jnp.maximum(shortest, jnp.ceil(jnp.log(t.astype(float) + 1) ** 2)).astype(t.dtype)

    def init() -> RateState:
        t0 = jnp.asarray(0, jnp.asarray(NEVER).dtype)
        return RateState(jnp.asarray(MAX_RATE, float), t0 + length(t0), jnp.asarray(0.0))

    def next_block(s: RateState, changes: Array | int, n: Array | int) -> RateState:
        r = changes / jnp.maximum(n, 1)
        estimate = jnp.log1p(-jnp.minimum(r, 1 - 1e-12)) / jnp.log1p(-s.p)
        p = jnp.where(
            r > 1 - math.exp(-3),
            s.p / 2,
            jnp.where(r <= 0, 2 * s.p, 1 / jnp.maximum(estimate, 1.0)),
        )
        p = jnp.clip(p, 2.0**-60, MAX_RATE)
        return RateState(p, s.end + length(s.end), s.memo)

    return Policy(f"adaptive:{shortest}", init, next_block, observes=True)


def parse(text: str, n: int) -> "Policy | StaticLaw":
    """A policy from its ``--rate`` name, for a problem of ``n`` relevant bits.

    ``static:P`` (a number, or ``1/n`` and ``C/n``: the rate that knows ``n``),
    ``static:pow:EPS`` and ``static:loglog:EPS`` (a fresh rate every generation from a
    fixed law, for an unknown ``n``: :mod:`rtrlx.evo.static_law`), ``schedule`` or
    ``schedule:A`` (the constant ``a``), ``adaptive``.

    Raises:
        ValueError: for an unknown or malformed name, listing the valid forms.

    Examples:
        >>> parse("static:1/n", 100).name
        'static:1/n'
        >>> parse("schedule", 10).name
        'schedule:1.54468'
    """
    from .static_law import loglog_law, power_law

    kind, _, arg = text.partition(":")
    law, _, eps = arg.partition(":")
    try:
        if kind == "static" and law in ("pow", "loglog") and eps:
            return (power_law if law == "pow" else loglog_law)(float(eps))
        if kind == "static" and arg:
            if arg.endswith("/n"):
                c = float(arg[:-2] or 1)
                return static(c / n, name=f"static:{arg}")
            return static(float(arg))
        if kind == "schedule":
            return schedule(float(arg) if arg else None)
        if kind == "adaptive" and not arg:
            return adaptive()
    except ValueError as exc:
        if "could not convert" not in str(exc):
            raise
    raise ValueError(
        f"unknown rate policy {text!r}; valid: static:P (e.g. static:0.001, static:1/n, "
        "static:2/n), static:pow:EPS and static:loglog:EPS (e.g. static:pow:0.5), schedule, "
        "schedule:A (e.g. schedule:0.77), adaptive."
    )
