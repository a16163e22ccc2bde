"""Optimal Kronecker-sum approximation of RTRL (OK)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import UnsupportedCellError
from ._base import Learner
from ._kronecker import kron_factors, kronecker_learner


def optimal_factors(sigma: Float[Array, " k"], signs: Float[Array, " k"]) -> Array:
    """A random ``F`` (k x (k-1)) with ``E[F F^T] = diag(sigma)`` and least variance.

    The minimum-variance unbiased rank-(k-1) approximation of a diagonal matrix (Benzing et
    al. 2019, Theorem 1): keep the ``m`` largest values exactly, where ``m`` is the fewest
    such that the rest satisfy ``(q - 1) σ_i <= s`` (``q`` of them, sum ``s``), and replace the
    rest by ``s/(q-1) D (I - v v^T) D``, with ``v_i = sqrt(1 - (q-1) σ_i / s)`` a unit vector
    and ``D`` random signs, whose mean is ``diag(σ)`` and whose rank is ``q - 1``.

    Args:
        sigma: singular values, in decreasing order, non-negative.
        signs: ``±1``, one per value.

    Returns:
        ``F`` such that ``F F^T`` is the approximation.
    """
    k = sigma.shape[0]
    idx = jnp.arange(k)
    tail = jnp.cumsum(sigma[::-1])[::-1]  # tail[i] = sum_{j >= i} sigma_j
    count = (k - idx).astype(sigma.dtype)  # q, the number of values from i on
    # The first index from which every value passes (q - 1) σ <= s; it always holds at k - 2.
    fits = ((count - 1) * sigma <= tail * (1 + 1e-12)) | (idx >= k - 2)
    fits = fits & (idx <= k - 2)
    m = jnp.argmax(fits)
    q = (k - m).astype(sigma.dtype)
    s = tail[m]
    tiny = jnp.finfo(sigma.dtype).tiny
    in_block = idx >= m
    v = jnp.where(in_block, jnp.sqrt(jnp.clip(1 - (q - 1) * sigma / (s + tiny), 0.0)), 0.0)
    # Householder reflection within the block taking e_last to v: its other block columns
    # are an orthonormal basis of the block's complement of v.
    w = jnp.zeros(k, sigma.dtype).at[k - 1].set(1.0) - v
    ww = jnp.sum(w * w)
    h = jnp.eye(k, dtype=sigma.dtype) - jnp.where(
        ww > 1e-30, 2.0 / jnp.maximum(ww, 1e-30), 0.0
    ) * (w[:, None] * w[None, :])
    scale = jnp.where(idx[: k - 1] < m, jnp.sqrt(sigma[: k - 1]), jnp.sqrt(s / (q - 1)))
    return signs[:, None] * h[:, : k - 1] * scale[None, :]


@jax.custom_batching.custom_vmap
def small_eigh(m: Float[Array, "k k"]) -> tuple[Array, Array]:
    """``jnp.linalg.eigh`` of a small symmetric matrix, one matrix at a time under ``vmap``.

    jaxlib runs a batched LAPACK kernel by splitting the batch over the CPU thread pool and
    waiting; on a 2-core machine the waiting worker and the one running the program are the
    whole pool, and the program hangs. A batch (streams, or keys under a user's ``vmap``)
    therefore runs as a ``lax.map`` of unbatched calls, which for the ``(r+1)``-square
    matrices here costs microseconds.

    Args:
        m: a symmetric matrix.

    Returns:
        ``(eigenvalues ascending, eigenvectors as columns)``.
    """
    values, vectors = jnp.linalg.eigh(m)
    return values, vectors


@small_eigh.def_vmap
def _small_eigh_vmap(axis_size, in_batched, m):
    del axis_size, in_batched  # m is batched: the rule only runs for a batched argument
    return jax.lax.map(small_eigh, m), (True, True)


def ok_reduce(
    key: PRNGKeyArray, u: Array, a: Array, u_new: Array, a_new: Array
) -> tuple[Array, Array]:
    """Reduce ``sum_i u_i ⊗ a_i + u_new ⊗ a_new`` (``r + 1`` terms) to ``r``, unbiased.

    The minimum-variance unbiased reduction of the OK paper. Writes the sum as ``Q_u M``
    with ``Q_u`` an orthonormal basis of the ``u`` side (from the eigendecomposition of the
    small Gram matrix ``U U^T``), finds the singular values ``σ`` and left vectors ``p`` of
    ``M`` from ``M M^T`` (also ``(r+1)``-square), and approximates ``diag(σ)`` with
    :func:`optimal_factors`. The right vectors are formed as ``M^T p / σ`` and scaled back
    by ``σ`` inside ``F F^T``, so the result is unbiased whatever the rounding in ``σ``; only
    its variance depends on it. The large side is touched by two matrix products only (its
    Gram matrix and the new terms). When ``u`` has at most ``r`` entries the sum is kept
    exactly, with no factorisation.

    Args:
        key: PRNG key for the signs.
        u: ``(r, cols)``, the propagated terms' ``u``.
        a: ``(r, rows_w, rows_a)``, the propagated terms' ``A^T`` (already ``(J_h A)^T``).
        u_new: ``(cols,)``, the new term's ``[a; 1]``.
        a_new: ``(rows_w, rows_a)``, the new term's ``D^T``.

    Returns:
        ``(u (r, cols), a (r, rows_w, rows_a))``.
    """
    rank, cols = u.shape
    terms = rank + 1
    # One (r + 1)-term copy of the large side: XLA:CPU runs the two products below faster
    # on it than on the propagated terms and the new one kept apart (measured: 14 vs 18 ms
    # per step for ok:8 on RHN n=128, batch 16, before A was stored transposed).
    flat = jnp.concatenate([a.reshape(rank, -1), a_new.reshape(1, -1)])  # (r + 1, L)
    u_all = jnp.concatenate([u, u_new[None]])  # (r + 1, cols), small

    def combine(x):  # sum_i x[i] * a_i over all r + 1 terms, for x (r + 1, k): (k, L)
        return x.T @ flat

    if cols <= rank:
        # The sum has rank <= cols <= r: write it exactly in the standard basis of u's side,
        # sum_i u_i ⊗ a_i = sum_j e_j ⊗ (sum_i u_i[j] a_i). No factorisation needed.
        a_out = jnp.concatenate([combine(u_all), jnp.zeros((rank - cols, flat.shape[1]), a.dtype)])
        return jnp.eye(rank, cols, dtype=u.dtype), a_out.reshape(a.shape)
    eps = jnp.finfo(u.dtype).eps
    # u side: U^T = Q_u B^T with Q_u = U^T V d^{-1/2} orthonormal and B = V d^{1/2}.
    d_u, v_u = small_eigh(u_all @ u_all.T)
    keep = d_u > eps * terms * d_u[-1]
    root = jnp.sqrt(jnp.where(keep, d_u, 1.0))
    q_u = (u_all.T @ v_u) * jnp.where(keep, 1.0 / root, 0.0)[None, :]  # (cols, r + 1)
    b = v_u * jnp.where(keep, root, 0.0)[None, :]  # (r + 1, r + 1)
    gram = b.T @ (flat @ flat.T) @ b  # M M^T with M = B^T A_all
    s2, p = small_eigh(0.5 * (gram + gram.T))
    s2, p = s2[::-1], p[:, ::-1]  # decreasing
    sigma = jnp.sqrt(jnp.clip(s2, 0.0))
    alive = sigma > eps * terms * sigma[0]
    sigma = jnp.where(alive, sigma, 0.0)
    coef = (b @ p) * jnp.where(alive, 1.0 / jnp.where(alive, sigma, 1.0), 0.0)[None, :]
    signs = jax.random.rademacher(key, (terms,), u.dtype)
    f = optimal_factors(sigma, signs)  # (r + 1, r)
    u_out = ((q_u @ p) @ f).T  # (r, cols)
    return u_out, combine(coef @ f).reshape(a.shape)


def ok(rank: int = 1) -> Learner:
    """Optimal Kronecker-sum approximation (OK): rank-``r`` unbiased RTRL, least variance.

    Like :func:`kf_rtrl`, but the influence of each weight matrix ``[W, b]`` is a sum of
    ``rank`` Kronecker products. Each step the ``rank`` propagated products and the new
    immediate product are reduced back to ``rank`` with the minimum-variance unbiased
    reduction of Benzing et al. (:func:`ok_reduce`: the paper's QR and SVD done as two
    eigendecompositions of ``(rank+1)``-square Gram matrices). Variance falls as the rank
    grows; with a rank at least the number of columns of ``[W, b]`` nothing is dropped and
    ``ok`` equals exact RTRL.
    Memory is O(rank · n^2) per stream.

    Args:
        rank: the number of Kronecker products kept per weight matrix (>= 1).

    Returns:
        A :class:`Learner` (stochastic; unbiased) for Elman (dense), GRU, LSTM and RHN.

    Raises:
        ValueError: for a rank below 1.
        UnsupportedCellError: from ``init``/``step`` on a cell without Kronecker factors.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.RHN(2, 8, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(8, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.ok(4), cell, head, rtrlx.losses.mse, jnp.ones((5, 2)),
        ...     jnp.zeros((5, 1)), key=jax.random.key(2))

    References:
        Benzing, Gauy, Mujika, Martinsson, Steger. Optimal Kronecker-Sum Approximation of
        Real Time Recurrent Learning. ICML 2019. https://arxiv.org/abs/1902.03993
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"ok(rank): rank must be an integer >= 1, got {rank!r}.")
    learner = kronecker_learner(f"ok:{rank}", rank, ok_reduce)

    def exact_on(cell) -> bool:
        try:
            factors = kron_factors(cell, learner.name)
        except UnsupportedCellError:
            return False
        cols = [getattr(cell, f.weight).shape[1] + (f.bias is not None) for f in factors]
        return bool(factors) and max(cols) <= rank

    return learner._replace(exact_on=exact_on)
