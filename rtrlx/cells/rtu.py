"""Recurrent trace units: a real-valued form of the complex diagonal recurrence."""

import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._tree import computed_once
from ._base import AbstractCell, ElementwiseRule

RTUState = tuple[Float[Array, " hidden"], Float[Array, " hidden"]]


class RTUTrace(NamedTuple):
    """The RTU's element-wise RTRL traces: ``d(c1, c2)[i] / dp`` for each parameter ``p``.

    Each array has a leading axis of 2: the derivative of ``c1`` and of ``c2``.
    """

    w1: Float[Array, "2 hidden input"]
    w2: Float[Array, "2 hidden input"]
    nu: Float[Array, "2 hidden"]
    theta: Float[Array, "2 hidden"]


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

    def rotation(
        self,
    ) -> tuple[Float[Array, " hidden"], Float[Array, " hidden"], Float[Array, " hidden"]]:
        """The per-unit ``(g, φ, s)``: ``r cos θ``, ``r sin θ`` and ``sqrt(1 - r^2)``.

        ``[[g, -φ], [φ, g]]`` is the rotation-decay and ``s`` the input gain. They are
        written once (:func:`rtrlx._tree.computed_once`), not recomputed for every element
        of the traces they scale.

        Returns:
            ``(g, φ, s)``, each ``(hidden,)``.

        Examples:
            >>> import jax, rtrlx
            >>> g, phi, s = rtrlx.cells.RTU(2, 4, key=jax.random.key(0)).rotation()
            >>> bool(((g**2 + phi**2 + s**2 - 1) ** 2 < 1e-10).all())
            True
        """
        r = jnp.exp(-jnp.exp(self.nu_log))
        theta = jnp.exp(self.theta_log)
        # Written once: fused, every use would recompute exp, cos and sin per element.
        g, phi, norm = computed_once(r * jnp.cos(theta), r * jnp.sin(theta), jnp.sqrt(1 - r**2))
        return g, phi, norm

    def __call__(self, state: RTUState, x: Float[Array, " input"]) -> RTUState:
        c1, c2 = state
        g, phi, norm = self.rotation()
        a1 = g * c1 - phi * c2 + norm * (self.w1 @ x)
        a2 = g * c2 + phi * c1 + norm * (self.w2 @ x)
        if self.nonlinear:
            return (self.activation(a1), self.activation(a2))
        return (a1, a2)

    def elementwise_rule(self) -> ElementwiseRule:
        """Exact element-wise RTRL for the RTU in closed form (its paper's real-time rule).

        With ``a = R (c1, c2) + s (W1 x, W2 x)`` (``R`` the 2 x 2 rotation-decay ``[[g, -φ],
        [φ, g]]``, ``s = sqrt(1 - r^2)``) and ``c' = f(a)`` (identity when linear), the trace
        of a parameter ``p`` is carried by ``e' = f'(a) ⊙ (R e + ∂a/∂p)``: ``∂a/∂W1[i, j] =
        (s_i x_j, 0)``, ``∂a/∂W2[i, j] = (0, s_i x_j)``, and for the eigenvalue parameters
        the derivative of ``R`` (and of ``s``) applied to the previous state. No Jacobian
        products are taken.
        """
        g, phi, norm = self.rotation()
        rate, theta = jnp.exp(self.nu_log), jnp.exp(self.theta_log)  # dr/dν_log = -rate r
        # d(g, φ)/dν_log and d(g, φ)/dθ_log, which scale the traces, written once (see
        # rotation); ds/dν_log scales per-unit values only, and is infinite where r rounds
        # to 1, which computed_once would spread to the others.
        dg_nu, dphi_nu, dg_th, dphi_th = computed_once(
            -rate * g, -rate * phi, -phi * theta, g * theta
        )
        ds_nu = rate * jnp.exp(-2 * rate) / norm

        def rotate(e1, e2, gg, pp):
            return gg * e1 - pp * e2, gg * e2 + pp * e1

        def init():
            w = jnp.zeros((2, *self.w1.shape), self.w1.dtype)
            v = jnp.zeros((2, self.hidden_size), self.nu_log.dtype)
            return RTUTrace(w, w, v, v)

        def step(trace: RTUTrace, h, x):
            c1, c2 = h
            u1, u2 = self.w1 @ x, self.w2 @ x
            a1 = g * c1 - phi * c2 + norm * u1
            a2 = g * c2 + phi * c1 + norm * u2
            ones = jnp.ones_like(a1)
            if self.nonlinear:  # f'(a), element-wise
                out1, d1 = jax.jvp(self.activation, (a1,), (ones,))
                out2, d2 = jax.jvp(self.activation, (a2,), (ones,))
            else:
                out1, d1, out2, d2 = a1, ones, a2, ones
            sx = norm[:, None] * x[None, :]
            col1, col2 = g[:, None], phi[:, None]

            def carry(e, add1, add2, gg, pp):
                r1, r2 = rotate(e[0], e[1], gg, pp)
                if not self.nonlinear:
                    return jnp.stack([r1 + add1, r2 + add2])
                shape = (-1,) + (1,) * (e.ndim - 2)
                return jnp.stack(
                    [d1.reshape(shape) * (r1 + add1), d2.reshape(shape) * (r2 + add2)]
                )

            zero = jnp.zeros_like(sx)
            w1 = carry(trace.w1, sx, zero, col1, col2)
            w2 = carry(trace.w2, zero, sx, col1, col2)
            nu = carry(
                trace.nu,
                dg_nu * c1 - dphi_nu * c2 + ds_nu * u1,
                dg_nu * c2 + dphi_nu * c1 + ds_nu * u2,
                g,
                phi,
            )
            th = carry(trace.theta, dg_th * c1 - dphi_th * c2, dg_th * c2 + dphi_th * c1, g, phi)
            return (out1, out2), RTUTrace(w1, w2, nu, th)

        def grads(trace: RTUTrace, delta):
            lead = "".join("abcdefgh"[: delta.ndim - 2])
            values = (
                jnp.einsum(f"{lead}si,{lead}si->i", delta, trace.nu),
                jnp.einsum(f"{lead}si,{lead}si->i", delta, trace.theta),
                jnp.einsum(f"{lead}si,{lead}sij->ij", delta, trace.w1),
                jnp.einsum(f"{lead}si,{lead}sij->ij", delta, trace.w2),
            )
            params = eqx.filter(self, eqx.is_inexact_array)
            return eqx.tree_at(lambda c: (c.nu_log, c.theta_log, c.w1, c.w2), params, values)

        return ElementwiseRule(init, step, grads)

    def features(self, state: RTUState) -> Float[Array, " 2*hidden"]:
        out = jnp.concatenate(state)
        return out if self.nonlinear else self.activation(out)

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size
