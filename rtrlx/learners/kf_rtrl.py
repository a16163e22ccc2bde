"""Kronecker-factored RTRL: each weight's influence as one random Kronecker product."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ._base import Learner
from ._kronecker import kronecker_learner


def kf_reduce(
    key: PRNGKeyArray, u: Array, a: Array, u_new: Array, a_new: Array
) -> tuple[Array, Array]:
    """Fold ``u[0] ⊗ a[0] + u_new ⊗ a_new`` into one Kronecker product, unbiasedly.

    With a random sign ``s`` and the variance-minimising scales ``ρ = sqrt(|a| / |u|)``,
    ``(ρ_0 u_0 + s ρ_1 u_new) ⊗ (a_0 / ρ_0 + s a_new / ρ_1)`` has the two products as its
    mean: the cross terms carry ``s`` and vanish in expectation.

    Args:
        key: PRNG key for the sign.
        u: ``(1, cols)``, the propagated term's ``u``.
        a: ``(1, rows_w, rows_a)``, the propagated term's ``A^T`` (already ``(J_h A)^T``).
        u_new: ``(cols,)``, the new term's ``[a; 1]``.
        a_new: ``(rows_w, rows_a)``, the new term's ``D^T``.

    Returns:
        ``(u (1, cols), a (1, rows_w, rows_a))``.
    """
    tiny = jnp.finfo(u.dtype).tiny

    def scale(x, y):
        return jnp.sqrt((jnp.sqrt(jnp.sum(y * y)) + tiny) / (jnp.sqrt(jnp.sum(x * x)) + tiny))

    rho0, rho1 = scale(u[0], a[0]), scale(u_new, a_new)
    sign = jax.random.rademacher(key, (), u.dtype)
    u_out = rho0 * u[0] + sign * rho1 * u_new
    a_out = a[0] / rho0 + sign * a_new / rho1
    return u_out[None], a_out[None]


def kf_rtrl() -> Learner:
    """Kronecker-factored RTRL (KF-RTRL): an unbiased O(n^3) approximation of RTRL.

    For every weight matrix the cell declares as entering ``W @ a + b``
    (``cell.kron_factors()``), the influence ``dh/d[W, b]`` is kept as a single Kronecker
    product ``u ⊗ A`` (``u`` over the columns of ``[W, b]``, ``A`` state x rows) and never
    materialised. Each step, the propagated product ``u ⊗ J_h A`` and the new immediate
    term ``[a; 1] ⊗ D`` are folded back into one with a random sign (:func:`kf_reduce`), so
    the estimate stays unbiased. Memory is O(n^2) per stream; the cost per step is dominated
    by ``J_h A``, O(n^3). The PRNG key lives in the state and is split at every step.

    Returns:
        A :class:`Learner` (stochastic; unbiased) for Elman (dense), GRU, LSTM and RHN.

    Raises:
        UnsupportedCellError: from ``init``/``step`` on a cell without Kronecker factors.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.RHN(2, 8, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(8, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.kf_rtrl(), cell, head, rtrlx.losses.mse, jnp.ones((5, 2)),
        ...     jnp.zeros((5, 1)), key=jax.random.key(2))

    References:
        Mujika, Meier, Steger. Approximating Real-Time Recurrent Learning with Random
        Kronecker Factors. NeurIPS 2018. https://arxiv.org/abs/1805.10842
    """
    return kronecker_learner("kf_rtrl", 1, kf_reduce)
