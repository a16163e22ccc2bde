"""The element-wise LSTM, whose recurrence is diagonal."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractCell

ELSTMState = tuple[Float[Array, " hidden"], Float[Array, " hidden"]]


class ELSTM(AbstractCell):
    """Element-wise LSTM (Irie et al. 2023): recurrent weights are vectors; state ``(c, h)``.

    ``z = tanh(W_z x + v_z ⊙ c + b_z)``, ``f = σ(W_f x + v_f ⊙ c + b_f)``,
    ``c' = f ⊙ c + (1 - f) ⊙ z``; the output gate reads the new cell state element-wise,
    ``o = σ(W_o x + v_o ⊙ c' + b_o)``, ``h' = o ⊙ c'``. Every unit depends only on itself,
    so exact RTRL costs O(parameters) per step. The paper's output gate is a dense layer on
    ``[x; c']``; here it is element-wise so that ``h`` stays a per-unit state, and a dense
    readout belongs in the head.

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        forget_bias: added to the forget gate's bias at initialisation.
        key: PRNG key for the initial parameters (normal, standard deviation 0.1).

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.ELSTM(3, 8, key=jax.random.key(0))
        >>> cell.features(cell(cell.init_state(), jax.numpy.ones(3))).shape
        (8,)

    References:
        Irie, Gopalakrishnan, Schmidhuber. Exploring the Promise and Limits of Real-Time
        Recurrent Learning. ICLR 2024. https://arxiv.org/abs/2305.19044
    """

    w_x: Float[Array, "3*hidden input"]
    v: Float[Array, " 3*hidden"]
    b: Float[Array, " 3*hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    diagonal = True

    def __init__(
        self, input_size: int, hidden_size: int, *, forget_bias: float = 1.0, key: PRNGKeyArray
    ):
        self.input_size, self.hidden_size = input_size, hidden_size
        n = hidden_size
        k1, k2, k3 = jax.random.split(key, 3)
        self.w_x = 0.1 * jax.random.normal(k1, (3 * n, input_size))
        self.v = 0.1 * jax.random.normal(k2, (3 * n,))
        self.b = (0.1 * jax.random.normal(k3, (3 * n,))).at[n : 2 * n].add(forget_bias)

    def init_state(self) -> ELSTMState:
        zeros = jnp.zeros(self.hidden_size, dtype=self.b.dtype)
        return (zeros, zeros)

    def __call__(self, state: ELSTMState, x: Float[Array, " input"]) -> ELSTMState:
        c, _ = state
        n = self.hidden_size
        gx = self.w_x @ x + self.b
        z = jnp.tanh(gx[:n] + self.v[:n] * c)
        f = jax.nn.sigmoid(gx[n : 2 * n] + self.v[n : 2 * n] * c)
        c_new = f * c + (1 - f) * z
        o = jax.nn.sigmoid(gx[2 * n :] + self.v[2 * n :] * c_new)
        return (c_new, o * c_new)

    def features(self, state: ELSTMState) -> Float[Array, " hidden"]:
        return state[1]

    @property
    def output_size(self) -> int:
        return self.hidden_size
