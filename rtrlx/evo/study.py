"""The runtime study of arXiv 1808.05566: runtime / (n ln n) against n for each rate policy."""

import math
from collections.abc import Callable, Sequence

import jax
import numpy as np

from . import rates, static_law
from .linear import simulate_linear
from .onemax import simulate

#: The paper's limits of runtime / (n ln n): the optimal schedule's and that of 1/n (and of
#: the adaptive rate, which does as well as knowing n).
LIMITS = {"schedule": rates.optimal_schedule_constants()[0], "1/n": math.e}


def runtime_row(n: int, rate: str, runs: int, *, seed: int = 0, function: str = "onemax") -> dict:
    """Simulate ``runs`` runs on a linear function of ``n`` bits; summarise runtime / (n ln n).

    Args:
        n: relevant bits.
        rate: a policy name (:func:`rtrlx.evo.rates.parse`).
        runs: independent runs.
        seed: the PRNG seed (the same seed gives every policy the same keys).
        function: ``onemax`` (the fast k-chain), ``binval`` or ``random`` (the position
            simulation of :mod:`rtrlx.evo.linear`; static laws over scales run on OneMax
            only).

    Returns:
        A dict: ``n``, ``rate``, ``runs``, ``finished``, ``mean``, ``ci95`` (the half-width
        of the normal 95% interval of the mean), ``median``, ``sd`` (all of runtime /
        (n ln n)), ``events`` (the simulation's loop steps) and ``seconds``.

    Examples:
        >>> row = runtime_row(200, "static:1/n", 100)
        >>> 2.0 < row["mean"] < 2.8 and row["finished"] == 100
        True
    """
    import time

    policy = rates.parse(rate, n)
    tic = time.perf_counter()
    key = jax.random.fold_in(jax.random.key(seed), n)
    if isinstance(policy, static_law.StaticLaw):
        if function != "onemax":
            raise ValueError(f"{rate} runs on onemax only, not {function}.")
        result = static_law.simulate(n, policy, runs, key=key)
    elif function == "onemax":
        result = simulate(n, policy, runs, key=key)
    else:
        result = simulate_linear(function, n, policy, runs, key=key)
    seconds = time.perf_counter() - tic
    scaled = result.runtime[result.finished] / (n * math.log(n))
    done = len(scaled)
    return {
        "n": n,
        "function": function,
        "rate": rate,
        "runs": runs,
        "finished": int(done),
        "mean": float(scaled.mean()) if done else None,
        "ci95": float(1.96 * scaled.std(ddof=1) / math.sqrt(done)) if done > 1 else None,
        "median": float(np.median(scaled)) if done else None,
        "sd": float(scaled.std(ddof=1)) if done > 1 else None,
        "events": result.events,
        "seconds": seconds,
    }


def study(
    ns: Sequence[int],
    rate_names: Sequence[str],
    runs: int,
    *,
    seed: int = 0,
    function: str = "onemax",
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """:func:`runtime_row` for every rate and every ``n`` (rates outer, ``n`` inner)."""
    rows = []
    for rate in rate_names:
        for n in ns:
            rows.append(runtime_row(n, rate, runs, seed=seed, function=function))
            if on_row:
                on_row(rows[-1])
    return rows


def fit(rows: Sequence[dict]) -> dict[str, float | None]:
    """The extrapolation that fits one rate's rows.

    :func:`fit_growth` for a static law over scales (whose runtime / (n ln n) grows without
    bound), else :func:`fit_constant`.
    """
    if rows and isinstance(rates.parse(rows[0]["rate"], rows[0]["n"]), static_law.StaticLaw):
        return fit_growth(rows)
    return fit_constant(rows)


def fit_growth(rows: Sequence[dict]) -> dict[str, float | None]:
    """The power of ``ln n`` in one rate's runtime / (n ln n): the slope of log-log.

    A static law ``P(p = 2^-j) ∝ j^-(1+eps)`` should give ``1 + eps`` as ``n`` grows (with a
    bounded oscillation, since ``log2 n`` falls between the scales).

    Returns:
        ``{"gamma": ...}`` (None with fewer than two sizes).

    Examples:
        >>> rows = [{"n": n, "mean": math.log(n) ** 1.5, "ci95": 0.1} for n in (100, 10_000)]
        >>> round(fit_growth(rows)["gamma"], 6)
        1.5
    """
    rows = [r for r in rows if r["mean"] is not None]
    if len(rows) < 2:
        return {"gamma": None}
    x = np.log(np.log([r["n"] for r in rows]))
    y = np.log([r["mean"] for r in rows])
    return {"gamma": float(np.polyfit(x, y, 1)[0])}


def fit_constant(rows: Sequence[dict]) -> dict[str, float | None]:
    """Extrapolate one rate's runtime / (n ln n) to ``n -> infinity``.

    Lower-order terms fall like ``1 / ln n`` (and ``ln ln n / ln n`` for the schedule, whose
    ``ln t`` is ``ln n + ln ln n + O(1)``), slowly: at ``n = 10^6``, ``ln n`` is 13.8. Fits
    ``C + c / ln n`` (two sizes or more) and ``C + b ln ln n / ln n + c / ln n`` (four or
    more), least squares weighted by the rows' confidence intervals.

    Returns:
        ``{"C_1": ..., "C_2": ...}``: the two fits' limits (None where too few sizes).
    """
    rows = [r for r in rows if r["mean"] is not None]
    if len(rows) < 2:
        return {"C_1": None, "C_2": None}
    ln = np.log([r["n"] for r in rows])
    y = np.array([r["mean"] for r in rows])
    w = 1 / np.maximum(np.array([r["ci95"] or 1.0 for r in rows]), 1e-9)
    out: dict[str, float | None] = {}
    for name, columns in (
        ("C_1", [np.ones_like(ln), 1 / ln]),
        ("C_2", [np.ones_like(ln), np.log(ln) / ln, 1 / ln]),
    ):
        design = np.stack(columns, axis=1)
        if len(rows) < len(columns) + 1:
            out[name] = None
            continue
        coef = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)[0]
        out[name] = float(coef[0])
    return out


def plot_study(rows: Sequence[dict], path: str) -> None:
    """Runtime / (n ln n) against n, one line per rate, with the paper's constants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rate in dict.fromkeys(r["rate"] for r in rows):
        mine = [r for r in rows if r["rate"] == rate and r["mean"] is not None]
        ax.errorbar(
            [r["n"] for r in mine],
            [r["mean"] for r in mine],
            yerr=[r["ci95"] or 0 for r in mine],
            marker="o",
            capsize=3,
            label=rate,
        )
    ax.axhline(LIMITS["schedule"], color="k", ls="--", lw=1, label="β = 3.5525 (schedule)")
    ax.axhline(LIMITS["1/n"], color="0.4", ls=":", lw=1, label="e (1/n known, adaptive)")
    means = [r["mean"] for r in rows if r["mean"]]
    function = rows[0].get("function", "onemax") if rows else "onemax"
    ax.set(
        xscale="log",
        # A static law over scales is tens of times slower: a log scale shows both.
        yscale="log" if means and max(means) > 10 * min(means) else "linear",
        xlabel="n (relevant bits)",
        ylabel="runtime / (n ln n)",
        title=f"(1+1) EA on {function}: mean runtime, 95% intervals",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
