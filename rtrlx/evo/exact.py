"""Exact expected runtimes of the (1+1) EA on OneMax, for checking the simulations."""

import numpy as np
from scipy.stats import binom


def expected_runtime(n: int, p: float) -> float:
    """``E[T]`` of the (1+1) EA with the static rate ``p`` on OneMax with ``n`` bits.

    The number of zeros ``k`` never grows; from ``k`` the chain moves to ``k - d`` with
    probability ``P(A - B = d)``, ``A ~ Bin(k, p)``, ``B ~ Bin(n - k, p)``, ``d > 0``, and
    stays otherwise, so ``E_k = (1 + sum_{j<k} P(k -> j) E_j) / (1 - P(k -> k))``. The
    start is uniform: ``E[T] = sum_k Bin(n, 1/2)(k) E_k``. Cost O(n^3): for ``n`` up to a
    few hundred.

    Args:
        n: the number of bits.
        p: the mutation rate, in (0, 1).

    Returns:
        The expected number of generations until the optimum.

    Examples:
        >>> expected_runtime(1, 0.25)  # one bit: 1 / (2 p)
        2.0
    """
    if n < 1 or not 0 < p < 1:
        raise ValueError(f"expected_runtime needs n >= 1 and 0 < p < 1, got n={n}, p={p}.")
    expected = np.zeros(n + 1)
    for k in range(1, n + 1):
        pa = binom.pmf(np.arange(k + 1), k, p)
        pb = binom.pmf(np.arange(n - k + 1), n - k, p)
        moves = np.convolve(pa, pb[::-1])  # index i is A - B = i - (n - k)
        down = moves[n - k + 1 :]  # P(A - B = d) for d = 1..k
        stay = 1 - down.sum()
        expected[k] = (1 + down @ expected[k - 1 :: -1][: len(down)]) / (1 - stay)
    return float(binom.pmf(np.arange(n + 1), n, 0.5) @ expected)
