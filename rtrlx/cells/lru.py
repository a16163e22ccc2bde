"""The linear recurrent unit: a complex diagonal linear recurrence."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from ._base import AbstractCell


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
        return modulus * jnp.cos(phase), modulus * jnp.sin(phase)

    def __call__(self, state: Complex[Array, " hidden"], x: Float[Array, " input"]):
        lam_re, lam_im = self.eigenvalues()
        gamma = jnp.exp(self.gamma_log)
        h_re, h_im = jnp.real(state), jnp.imag(state)
        new_re = lam_re * h_re - lam_im * h_im + gamma * (self.b_re @ x)
        new_im = lam_re * h_im + lam_im * h_re + gamma * (self.b_im @ x)
        return jax.lax.complex(new_re, new_im)

    def features(self, state: Complex[Array, " hidden"]) -> Float[Array, " 2*hidden"]:
        return jnp.concatenate([jnp.real(state), jnp.imag(state)])

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size
