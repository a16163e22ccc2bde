"""The single-layer recurrent highway cell of the KF-RTRL and OK papers."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ._base import AbstractCell, KronFactor, uniform


class RHN(AbstractCell):
    """Recurrent highway cell of depth one, as trained by KF-RTRL and OK.

    ``[a, b] = W [h; x] + b``, candidate ``c = 2 σ(a) - 1``, gate ``f = σ(b)``,
    ``h' = f ⊙ h + (1 - f) ⊙ c``. The weight acts on ``[h; x]`` (one Kronecker factor).

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        gate_bias: added to the gate's bias at initialisation (positive carries ``h``).
        key: PRNG key for the initial weights (uniform on ``±1/sqrt(n)``).

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.RHN(2, 8, key=jax.random.key(0))
        >>> cell(cell.init_state(), jax.numpy.ones(2)).shape
        (8,)

    References:
        Mujika, Meier, Steger. Approximating Real-Time Recurrent Learning with Random
        Kronecker Factors. NeurIPS 2018. https://arxiv.org/abs/1805.10842
    """

    weight: Float[Array, "2*hidden hidden+input"]
    bias: Float[Array, " 2*hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, gate_bias: float = 0.0, key: PRNGKeyArray
    ):
        self.input_size, self.hidden_size = input_size, hidden_size
        n, bound = hidden_size, 1.0 / math.sqrt(hidden_size)
        kw, kb = jax.random.split(key)
        self.weight = uniform(kw, (2 * n, n + input_size), bound)
        self.bias = uniform(kb, (2 * n,), bound).at[n:].add(gate_bias)

    def init_state(self) -> Float[Array, " hidden"]:
        return jnp.zeros(self.hidden_size, dtype=self.bias.dtype)

    def __call__(self, state: Float[Array, " hidden"], x: Float[Array, " input"]):
        return self.from_preactivations(state, x, self.preactivations(state, x))

    def kron_factors(self) -> tuple[KronFactor, ...]:
        return (KronFactor("weight", "bias"),)

    def kron_inputs(self, state: State, x: Float[Array, " input"]) -> tuple[Array, ...]:
        return (jnp.concatenate([state, x]),)

    def from_preactivations(self, state: State, x: Array, pre: tuple[Array, ...]) -> State:
        n = self.hidden_size
        (z,) = pre
        candidate = 2 * jax.nn.sigmoid(z[:n]) - 1
        gate = jax.nn.sigmoid(z[n:])
        return gate * state + (1 - gate) * candidate

    def features(self, state: Float[Array, " hidden"]) -> Float[Array, " hidden"]:
        return state

    @property
    def output_size(self) -> int:
        return self.hidden_size
