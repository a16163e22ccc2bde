"""Optimal Kronecker-sum approximation of RTRL (OK)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import Learner
from ._kronecker import kronecker_learner


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


def serial(*arrays: Array) -> tuple[Array, ...]:
    """Return ``arrays`` unchanged, but only once all of them are computed.

    Feeding one LAPACK call's inputs through this together with the previous call's outputs
    orders the two calls, so that no two LAPACK kernels compete for the CPU thread pool
    (see :func:`ok_reduce`).
    """
    return tuple(jax.lax.optimization_barrier(arrays))


def _ok_reduce(key: PRNGKeyArray, u: Array, a: Array) -> tuple[Array, Array]:
    """Reduce ``sum_i u_i ⊗ a_i`` (``r + 1`` terms) to ``r`` terms, unbiased, least variance.

    Orthonormalise both sides (two QR decompositions), take the SVD of the small core
    ``R_u R_a^T``, and approximate its singular values with :func:`optimal_factors`. When
    the sum has rank at most ``r`` (e.g. fewer columns than ``r + 1``) it is kept exactly.

    Args:
        key: PRNG key for the signs.
        u: ``(r + 1, cols)``.
        a: ``(r + 1, rows_a, rows_w)``.

    Returns:
        ``(u (r, cols), a (r, rows_a, rows_w))``.
    """
    terms = u.shape[0]
    rank = terms - 1
    flat = a.reshape(terms, -1)
    cols = u.shape[1]
    if cols <= rank:
        # The sum has rank <= cols <= r: write it exactly in the standard basis of u's side,
        # sum_i u_i ⊗ a_i = sum_j e_j ⊗ (sum_i u_i[j] a_i). No factorisation needed.
        u_new = jnp.eye(rank, cols, dtype=u.dtype)
        a_new = jnp.concatenate([u.T @ flat, jnp.zeros((rank - cols, flat.shape[1]), a.dtype)])
        return u_new, a_new.reshape(rank, *a.shape[1:])
    # LAPACK calls run one after another (see `serial`).
    q_u, r_u = jnp.linalg.qr(u.T)  # (cols, k1), (k1, terms)
    flat, q_u, r_u = serial(flat, q_u, r_u)
    q_a, r_a = jnp.linalg.qr(flat.T)  # (size, k2), (k2, terms)
    core, q_a = serial(r_u @ r_a.T, q_a)
    p, sigma, vt = jnp.linalg.svd(core, full_matrices=False)
    left, right = q_u @ p, q_a @ vt.T  # orthonormal singular vectors of the whole sum
    if sigma.shape[0] <= rank:  # the flattened side is too small to need a reduction
        root = jnp.sqrt(sigma)
        u_new = (left * root[None, :]).T
        a_new = (right * root[None, :]).T
        pad = rank - sigma.shape[0]
        u_new = jnp.concatenate([u_new, jnp.zeros((pad, cols), u.dtype)])
        a_new = jnp.concatenate([a_new, jnp.zeros((pad, flat.shape[1]), a.dtype)])
    else:
        signs = jax.random.rademacher(key, (terms,), u.dtype)
        f = optimal_factors(sigma, signs)  # (r + 1, r)
        u_new = (left @ f).T
        a_new = (right @ f).T
    return u_new, a_new.reshape(rank, *a.shape[1:])


@jax.custom_batching.custom_vmap
def ok_reduce(key: PRNGKeyArray, u: Array, a: Array) -> tuple[Array, Array]:
    """:func:`_ok_reduce`, mapped one example at a time under ``vmap``.

    jaxlib runs a batched LAPACK kernel (the QRs and the SVD here) by splitting the batch
    over the CPU thread pool and waiting; on a 2-core machine the waiting worker and the
    one running the program are the whole pool, and the program hangs. So a batch of
    reductions (streams, or keys under a user's ``vmap``) runs as a ``lax.map`` of
    unbatched ones. See :func:`_ok_reduce` for the arguments.
    """
    return _ok_reduce(key, u, a)


@ok_reduce.def_vmap
def _ok_reduce_vmap(axis_size, in_batched, key, u, a):
    key, u, a = (
        x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, batched in zip((key, u, a), in_batched, strict=True)
    )
    return jax.lax.map(lambda args: ok_reduce(*args), (key, u, a)), (True, True)


def ok(rank: int = 1) -> Learner:
    """Optimal Kronecker-sum approximation (OK): rank-``r`` unbiased RTRL, least variance.

    Like :func:`kf_rtrl`, but the influence of each weight matrix ``[W, b]`` is a sum of
    ``rank`` Kronecker products. Each step the ``rank`` propagated products and the new
    immediate product are reduced back to ``rank`` with the minimum-variance unbiased
    reduction of Benzing et al. (:func:`ok_reduce`: two thin QRs and an SVD of a
    ``(rank+1)``-square core). Variance falls as the rank grows; with a rank at least the
    number of columns of ``[W, b]`` nothing is dropped and ``ok`` equals exact RTRL.
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
        factors = cell.kron_factors()
        cols = [getattr(cell, f.weight).shape[1] + (f.bias is not None) for f in factors]
        return bool(factors) and max(cols) <= rank

    return learner._replace(exact_on=exact_on)
