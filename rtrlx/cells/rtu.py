"""Recurrent trace units: a real-valued form of the complex diagonal recurrence."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractCell

RTUState = tuple[Float[Array, " hidden"], Float[Array, " hidden"]]


class RTU(AbstractCell):
    """Recurrent trace units (Elelimy et al. 2024), linear or nonlinear.

    Each unit is a pair ``(c1, c2)`` rotated and decayed by ``r = exp(-exp(nu_log))`` and
    ``theta = exp(theta_log)`` (``g = r cos θ``, ``φ = r sin θ``), with the input normalised
    by ``sqrt(1 - r^2)``::

        a1 = g ⊙ c1 - φ ⊙ c2 + sqrt(1 - r^2) ⊙ (W1 x)
        a2 = g ⊙ c2 + φ ⊙ c1 + sqrt(1 - r^2) ⊙ (W2 x)

    The linear RTU keeps ``(c1, c2) = (a1, a2)`` and its features are ``f([c1; c2])``; the
    nonlinear RTU (``nonlinear=True``) applies ``f`` inside the recurrence,
    ``(c1, c2) = (f(a1), f(a2))``, and its features are ``[c1; c2]``. Either way the
    recurrence is diagonal (2 x 2 per unit), so element-wise RTRL is exact.

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n`` (the state holds ``2n`` numbers).
        nonlinear: apply the activation inside the recurrence.
        activation: ``f``, ReLU as in the paper.
        r_min: smallest initial decay ``r``.
        r_max: largest initial decay ``r``.
        max_phase: largest initial ``θ``.
        key: PRNG key for the initial parameters.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.RTU(3, 8, nonlinear=True, key=jax.random.key(0))
        >>> cell.features(cell(cell.init_state(), jax.numpy.ones(3))).shape
        (16,)

    References:
        Elelimy, White, Bowling, White. Real-Time Recurrent Learning using Trace Units in
        Reinforcement Learning. NeurIPS 2024. https://arxiv.org/abs/2409.01449
    """

    nu_log: Float[Array, " hidden"]
    theta_log: Float[Array, " hidden"]
    w1: Float[Array, "hidden input"]
    w2: Float[Array, "hidden input"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    nonlinear: bool = eqx.field(static=True)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    diagonal = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinear: bool = False,
        activation: Callable[[Array], Array] = jax.nn.relu,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        key: PRNGKeyArray,
    ):
        if not 0.0 <= r_min < r_max <= 1.0:
            raise ValueError(f"RTU: need 0 <= r_min < r_max <= 1, got {r_min}, {r_max}.")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinear, self.activation = nonlinear, activation
        k1, k2, k3, k4 = jax.random.split(key, 4)
        u1 = jax.random.uniform(k1, (hidden_size,), minval=1e-4)
        u2 = jax.random.uniform(k2, (hidden_size,), minval=1e-4)
        self.nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        self.theta_log = jnp.log(max_phase * u2)
        scale = 1.0 / math.sqrt(input_size)
        self.w1 = scale * jax.random.normal(k3, (hidden_size, input_size))
        self.w2 = scale * jax.random.normal(k4, (hidden_size, input_size))

    def init_state(self) -> RTUState:
        zeros = jnp.zeros(self.hidden_size, dtype=self.nu_log.dtype)
        return (zeros, zeros)

    def __call__(self, state: RTUState, x: Float[Array, " input"]) -> RTUState:
        c1, c2 = state
        r = jnp.exp(-jnp.exp(self.nu_log))
        theta = jnp.exp(self.theta_log)
        g, phi, norm = r * jnp.cos(theta), r * jnp.sin(theta), jnp.sqrt(1 - r**2)
        a1 = g * c1 - phi * c2 + norm * (self.w1 @ x)
        a2 = g * c2 + phi * c1 + norm * (self.w2 @ x)
        if self.nonlinear:
            return (self.activation(a1), self.activation(a2))
        return (a1, a2)

    def features(self, state: RTUState) -> Float[Array, " 2*hidden"]:
        out = jnp.concatenate(state)
        return out if self.nonlinear else self.activation(out)

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size
