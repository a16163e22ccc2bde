"""The long short-term memory cell."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractCell, KronFactor, uniform

LSTMState = tuple[Float[Array, " hidden"], Float[Array, " hidden"]]


class LSTM(AbstractCell):
    """LSTM (Hochreiter and Schmidhuber 1997) with a forget gate; state ``(h, c)``.

    ``[i, f, g, o] = W [h; x] + b``, ``c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)``,
    ``h' = σ(o) ⊙ tanh(c')``. The weight acts on ``[h; x]`` (one Kronecker factor).

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        forget_bias: added to the forget gate's bias at initialisation.
        key: PRNG key for the initial weights (uniform on ``±1/sqrt(n)``).

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.LSTM(4, 16, key=jax.random.key(0))
        >>> h, c = cell(cell.init_state(), jax.numpy.ones(4))
        >>> h.shape, c.shape
        ((16,), (16,))
    """

    weight: Float[Array, "4*hidden hidden+input"]
    bias: Float[Array, " 4*hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, forget_bias: float = 1.0, key: PRNGKeyArray
    ):
        self.input_size, self.hidden_size = input_size, hidden_size
        n, bound = hidden_size, 1.0 / math.sqrt(hidden_size)
        kw, kb = jax.random.split(key)
        self.weight = uniform(kw, (4 * n, n + input_size), bound)
        self.bias = uniform(kb, (4 * n,), bound).at[n : 2 * n].add(forget_bias)

    def init_state(self) -> LSTMState:
        zeros = jnp.zeros(self.hidden_size, dtype=self.bias.dtype)
        return (zeros, zeros)

    def __call__(self, state: LSTMState, x: Float[Array, " input"]) -> LSTMState:
        return self.from_preactivations(state, x, self.preactivations(state, x))

    def kron_factors(self) -> tuple[KronFactor, ...]:
        return (KronFactor("weight", "bias"),)

    def kron_inputs(self, state: LSTMState, x: Float[Array, " input"]) -> tuple[Array, ...]:
        return (jnp.concatenate([state[0], x]),)

    def from_preactivations(self, state: LSTMState, x: Array, pre: tuple[Array, ...]):
        c = state[1]
        n = self.hidden_size
        (gates,) = pre
        i, f = jax.nn.sigmoid(gates[:n]), jax.nn.sigmoid(gates[n : 2 * n])
        g, o = jnp.tanh(gates[2 * n : 3 * n]), jax.nn.sigmoid(gates[3 * n :])
        c_new = f * c + i * g
        return (o * jnp.tanh(c_new), c_new)

    def features(self, state: LSTMState) -> Float[Array, " hidden"]:
        return state[0]

    @property
    def output_size(self) -> int:
        return self.hidden_size
