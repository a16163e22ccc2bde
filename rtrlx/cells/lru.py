"""The linear recurrent unit: a complex diagonal linear recurrence."""

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from .._tree import computed_once
from ._base import AbstractCell, ElementwiseRule


class LRUTrace(NamedTuple):
    """The LRU's complex element-wise traces (see :meth:`LRU.elementwise_rule`)."""

    # dh_i / d b_re[i, j] = b_re + i b_im (complex, kept as two real arrays: XLA:CPU runs
    # the element-wise update 1.7x faster on real pairs than on a complex array)
    b_re: Float[Array, "hidden input"]
    b_im: Float[Array, "hidden input"]
    lam: Complex[Array, " hidden"]  # dh_i / d λ_i
    gamma: Complex[Array, " hidden"]  # dh_i / d gamma_log_i


class LRU(AbstractCell):
    """Linear recurrent unit (Orvieto et al. 2023), the cell of online LRU learning.

    ``h' = λ ⊙ h + γ ⊙ (B x)`` with complex ``h``, ``λ = exp(-exp(ν_log) + i exp(θ_log))``
    and input normalisation ``γ = exp(γ_log)``, initialised to ``sqrt(1 - |λ|^2)``. The
    eigenvalues are drawn uniformly on the ring ``r_min <= |λ| <= r_max`` with phase in
    ``[0, max_phase]``. The recurrence is diagonal, so element-wise RTRL is exact. The
    readout (the LRU's ``C``, ``D``) is the head; :meth:`features` is ``[Re h, Im h]``.

    Args:
        input_size: length of ``x``.
        hidden_size: number of complex units ``n``.
        r_min: smallest initial eigenvalue modulus.
        r_max: largest initial eigenvalue modulus.
        max_phase: largest initial eigenvalue phase.
        key: PRNG key for the initial parameters.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.LRU(3, 8, key=jax.random.key(0))
        >>> cell.features(cell(cell.init_state(), jax.numpy.ones(3))).shape
        (16,)

    References:
        Zucchet, Meier, Schug, Mujika, Sacramento. Online learning of long-range
        dependencies. NeurIPS 2023. https://arxiv.org/abs/2305.15947
    """

    nu_log: Float[Array, " hidden"]
    theta_log: Float[Array, " hidden"]
    gamma_log: Float[Array, " hidden"]
    b_re: Float[Array, "hidden input"]
    b_im: Float[Array, "hidden input"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    diagonal = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        r_min: float = 0.4,
        r_max: float = 0.99,
        max_phase: float = 2 * math.pi,
        key: PRNGKeyArray,
    ):
        if not 0.0 <= r_min < r_max <= 1.0:
            raise ValueError(f"LRU: need 0 <= r_min < r_max <= 1, got {r_min}, {r_max}.")
        self.input_size, self.hidden_size = input_size, hidden_size
        k1, k2, k3, k4 = jax.random.split(key, 4)
        u1 = jax.random.uniform(k1, (hidden_size,))
        u2 = jax.random.uniform(k2, (hidden_size,))
        self.nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        self.theta_log = jnp.log(max_phase * u2)
        modulus = jnp.exp(-jnp.exp(self.nu_log))
        self.gamma_log = jnp.log(jnp.sqrt(1 - modulus**2))
        scale = 1.0 / math.sqrt(2 * input_size)
        self.b_re = scale * jax.random.normal(k3, (hidden_size, input_size))
        self.b_im = scale * jax.random.normal(k4, (hidden_size, input_size))

    def init_state(self) -> Complex[Array, " hidden"]:
        zeros = jnp.zeros(self.hidden_size, dtype=self.nu_log.dtype)
        return jax.lax.complex(zeros, zeros)

    def eigenvalues(self) -> tuple[Float[Array, " hidden"], Float[Array, " hidden"]]:
        """Real and imaginary parts of the diagonal recurrence ``λ``."""
        modulus = jnp.exp(-jnp.exp(self.nu_log))
        phase = jnp.exp(self.theta_log)
        # Written once: fused, every use would recompute exp, cos and sin per element.
        lam_re, lam_im = computed_once(modulus * jnp.cos(phase), modulus * jnp.sin(phase))
        return lam_re, lam_im

    def __call__(self, state: Complex[Array, " hidden"], x: Float[Array, " input"]):
        lam_re, lam_im = self.eigenvalues()
        gamma = jnp.exp(self.gamma_log)
        h_re, h_im = jnp.real(state), jnp.imag(state)
        new_re = lam_re * h_re - lam_im * h_im + gamma * (self.b_re @ x)
        new_im = lam_re * h_im + lam_im * h_re + gamma * (self.b_im @ x)
        return jax.lax.complex(new_re, new_im)

    def elementwise_rule(self) -> ElementwiseRule:
        """Exact element-wise RTRL in complex arithmetic, in the online LRU's form.

        ``h`` is holomorphic in ``λ`` and in ``B = b_re + i b_im``, so one complex trace per
        entry serves both parts: ``E_B <- λ E_B + γ xᵀ`` is ``dh_i/d b_re[i, j]``, and
        ``i E_B`` is ``dh_i/d b_im[i, j]``. Likewise ``E_λ <- λ E_λ + h`` and
        ``E_γ <- λ E_γ + γ ⊙ (B x)`` for the eigenvalues and the input gain. This halves the
        generic trace (two real rows for each of ``b_re`` and ``b_im``) and needs no
        Jacobian products. A real parameter ``p`` with trace ``e = dh/dp`` gets
        ``Re(conj(δ) e)``, where ``δ = dL/dRe h + i dL/dIm h``.
        """
        lam_re, lam_im = self.eigenvalues()
        (gamma,) = computed_once(jnp.exp(self.gamma_log))
        lam = jax.lax.complex(lam_re, lam_im)

        def values(g_lam, g_gamma, g_b_re, g_b_im):
            """The parameters' gradients from the traces' complex read-outs."""
            nu_rate, phase_rate = jnp.exp(self.nu_log), jnp.exp(self.theta_log)
            grads = (
                jnp.real(g_lam * lam) * -nu_rate,  # dλ/dν_log = -exp(ν_log) λ
                jnp.real(g_lam * lam * 1j) * phase_rate,  # dλ/dθ_log = i exp(θ_log) λ
                jnp.real(g_gamma),
                g_b_re,
                g_b_im,
            )
            params = eqx.filter(self, eqx.is_inexact_array)
            return eqx.tree_at(
                lambda c: (c.nu_log, c.theta_log, c.gamma_log, c.b_re, c.b_im), params, grads
            )

        def init():
            zeros = jnp.zeros_like(self.b_re)
            return LRUTrace(zeros, zeros, jnp.zeros_like(lam), jnp.zeros_like(lam))

        def step(trace: LRUTrace, h, x):
            gx = gamma[:, None] * x[None, :]  # real: γ_i x_j
            gbx = jax.lax.complex(gamma * (self.b_re @ x), gamma * (self.b_im @ x))
            new = lam * h + gbx
            re, im = lam_re[:, None], lam_im[:, None]
            e_re = re * trace.b_re - im * trace.b_im + gx  # λ E + γ xᵀ, in real pairs
            e_im = re * trace.b_im + im * trace.b_re
            return new, LRUTrace(e_re, e_im, lam * trace.lam + h, lam * trace.gamma + gbx)

        def grads(trace: LRUTrace, delta):
            dc = jax.lax.complex(delta[..., 0, :], -delta[..., 1, :])  # conj(δ)
            lead = "".join("abcdefgh"[: delta.ndim - 2])
            # Re(conj(δ) E) and -Im(conj(δ) E), with δ = d_re + i d_im and E = e_re + i e_im,
            # each one contraction over the batch and the (re, im) pair.
            e = jnp.stack([trace.b_re, trace.b_im], axis=-3)  # (..., 2, n, d)
            turned = jnp.stack([delta[..., 1, :], -delta[..., 0, :]], axis=-2)
            g_b_re = jnp.einsum(f"{lead}si,{lead}sij->ij", delta, e)
            g_b_im = jnp.einsum(f"{lead}si,{lead}sij->ij", turned, e)
            g_lam = jnp.einsum(f"{lead}i,{lead}i->i", dc, trace.lam)
            g_gamma = jnp.einsum(f"{lead}i,{lead}i->i", dc, trace.gamma)
            return values(g_lam, g_gamma, g_b_re, g_b_im)  # Re(conj(δ) i E) = -Im(conj(δ) E)

        def chunk(trace: LRUTrace, prev, xs, deltas):
            # Over a chunk of C steps with the trace E_0 before it, every trace is
            # E_t = λ^t E_0 + sum_{s<=t} λ^(t-s) u_s (u_s: the trace's input at step s), so
            # sum_t conj(δ_t) E_t = (λ c_1) E_0 + sum_s c_s u_s with the backward sums
            # c_s = conj(δ_s) + λ c_{s+1}. For B, u_s = γ x_sᵀ and the second term is one
            # GEMM over (steps x batch); the trace after the chunk is λ^C E_0 plus another.
            steps = xs.shape[0]
            dc = jax.lax.complex(deltas[..., 0, :], -deltas[..., 1, :])  # (C, batch, n)

            def back(c_next, d):
                c = d + lam[None] * c_next
                return c, c

            _, c = jax.lax.scan(back, jnp.zeros_like(dc[0]), dc, reverse=True)
            first = lam[None] * c[0]  # (batch, n): sum_t conj(δ_t) λ^t

            def power(k):  # λ^k for k (m,), from λ = exp(-exp(ν_log) + i exp(θ_log)): (m, n)
                modulus = jnp.exp(-k[:, None] * jnp.exp(self.nu_log)[None])
                phase = k[:, None] * jnp.exp(self.theta_log)[None]
                return jax.lax.complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))

            # decay[s] = λ^(C-1-s) and, last, λ^C
            powers = power(jnp.arange(steps, -1, -1, dtype=self.nu_log.dtype))
            lam_c, decay = powers[0], powers[1:]
            # B: Re and Im of sum_b first E_0 + γ sum_{s,b} c_s x_sᵀ, in real pairs.
            f_re, f_im = jnp.real(first), jnp.imag(first)
            c_re, c_im = jnp.real(c), jnp.imag(c)
            g_re = jnp.einsum("bi,bij->ij", f_re, trace.b_re) - jnp.einsum(
                "bi,bij->ij", f_im, trace.b_im
            )
            g_im = jnp.einsum("bi,bij->ij", f_re, trace.b_im) + jnp.einsum(
                "bi,bij->ij", f_im, trace.b_re
            )
            g_re = g_re + gamma[:, None] * jnp.einsum("sbi,sbj->ij", c_re, xs)
            g_im = g_im + gamma[:, None] * jnp.einsum("sbi,sbj->ij", c_im, xs)
            p_re = gamma[None] * jnp.real(decay)
            p_im = gamma[None] * jnp.imag(decay)
            add_re = jnp.einsum("si,sbj->bij", p_re, xs)
            add_im = jnp.einsum("si,sbj->bij", p_im, xs)
            lc_re, lc_im = jnp.real(lam_c)[None, :, None], jnp.imag(lam_c)[None, :, None]
            e_re = lc_re * trace.b_re - lc_im * trace.b_im + add_re
            e_im = lc_re * trace.b_im + lc_im * trace.b_re + add_im
            # λ and γ: inputs h_{s-1} and γ ⊙ (B x_s), n per step and stream.
            gbx = jax.lax.complex(
                gamma[None, None] * jnp.einsum("sbj,ij->sbi", xs, self.b_re),
                gamma[None, None] * jnp.einsum("sbj,ij->sbi", xs, self.b_im),
            )
            g_lam = jnp.sum(first * trace.lam, axis=0) + jnp.sum(c * prev, axis=(0, 1))
            g_gamma = jnp.sum(first * trace.gamma, axis=0) + jnp.sum(c * gbx, axis=(0, 1))
            new_lam = lam_c[None] * trace.lam + jnp.sum(decay[:, None] * prev, axis=0)
            new_gamma = lam_c[None] * trace.gamma + jnp.sum(decay[:, None] * gbx, axis=0)
            return LRUTrace(e_re, e_im, new_lam, new_gamma), values(g_lam, g_gamma, g_re, -g_im)

        return ElementwiseRule(init, step, grads, chunk)

    def features(self, state: Complex[Array, " hidden"]) -> Float[Array, " 2*hidden"]:
        return jnp.concatenate([jnp.real(state), jnp.imag(state)])

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size
