"""Exact expected runtimes of the (1+1) EA on OneMax, for checking the simulations."""

from collections.abc import Sequence

import numpy as np
from scipy.stats import binom


def expected_runtime(
    n: int, p: float | Sequence[float] | np.ndarray, probs: Sequence[float] | np.ndarray = (1.0,)
) -> float:
    """``E[T]`` of the (1+1) EA with the static rate ``p`` on OneMax with ``n`` bits.

    With several rates ``p`` and their ``probs``, each generation draws its rate from that law
    (:mod:`rtrlx.evo.static_law`), and the chain's moves are the law's mixture.

    The number of zeros ``k`` never grows; from ``k`` the chain moves to ``k - d`` with
    probability ``P(A - B = d)``, ``A ~ Bin(k, p)``, ``B ~ Bin(n - k, p)``, ``d > 0``, and
    stays otherwise, so ``E_k = (1 + sum_{j<k} P(k -> j) E_j) / (1 - P(k -> k))``. The
    start is uniform: ``E[T] = sum_k Bin(n, 1/2)(k) E_k``. Cost O(n^3): for ``n`` up to a
    few hundred.

    Args:
        n: the number of bits.
        p: the mutation rate, in (0, 1), or several.
        probs: the probability of each rate (default: the one rate).

    Returns:
        The expected number of generations until the optimum.

    Examples:
        >>> expected_runtime(1, 0.25)  # one bit: 1 / (2 p)
        2.0
    """
    rates, weights = np.atleast_1d(np.asarray(p, float)), np.asarray(probs, float)
    if n < 1 or not np.all((rates > 0) & (rates < 1)) or rates.shape != weights.shape:
        raise ValueError(
            f"expected_runtime needs n >= 1, rates in (0, 1) and one probability per rate, got "
            f"n={n}, p={p}, probs={probs}."
        )
    expected = np.zeros(n + 1)
    for k in range(1, n + 1):
        down = np.zeros(k)  # P(A - B = d) for d = 1..k, mixed over the rates
        for rate, weight in zip(rates, weights, strict=True):
            pa = binom.pmf(np.arange(k + 1), k, rate)
            pb = binom.pmf(np.arange(n - k + 1), n - k, rate)
            down += weight * np.convolve(pa, pb[::-1])[n - k + 1 :]  # index i: A - B = i - (n - k)
        stay = 1 - down.sum()
        expected[k] = (1 + down @ expected[k - 1 :: -1][: len(down)]) / (1 - stay)
    return float(binom.pmf(np.arange(n + 1), n, 0.5) @ expected)
