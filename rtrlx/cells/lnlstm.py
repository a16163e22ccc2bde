"""The layer-normalised LSTM of the Fast-Slow RNN paper."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractCell, uniform
from ._compose import not_unit_local

LSTMState = tuple[Float[Array, " hidden"], Float[Array, " hidden"]]

#: Added to the variance before its square root, as in the official FS-RNN code.
EPS = 1e-3


def _normalise(z: Array, gain: Array, shift: Array) -> Array:
    """Layer norm over the last axis, then a per-entry gain and shift."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    return (z - mean) * jax.lax.rsqrt(var + EPS) * gain + shift


class LNLSTM(AbstractCell):
    """LSTM with layer normalisation (Ba et al. 2016) as the Fast-Slow RNN uses it.

    ``z = W [h; x]``, normalised per gate block (each of ``i, f, g, o`` over its ``n``
    units, then a learned gain and shift), ``c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)`` and
    ``h' = σ(o) ⊙ tanh(LN(c'))``: the carried ``c'`` is not normalised, only its path to
    ``h'``. The forget gate's shift starts at ``forget_bias`` (the official code adds a
    constant 1 instead; at initialisation the two are the same). Weights are uniform on
    ``±1/sqrt(n)`` like rtrlx's LSTM (the official code initialises them orthogonal).

    The normalisation couples every unit of a gate block, so the cell is not unit-local:
    exact RTRL, UORO, BPTT and TBPTT train it; SnAp, element-wise RTRL, KF-RTRL and OK refuse.

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        forget_bias: the forget gate's initial shift.
        key: PRNG key for the initial weights.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.LNLSTM(4, 16, key=jax.random.key(0))
        >>> h, c = cell(cell.init_state(), jax.numpy.ones(4))
        >>> h.shape, c.shape
        ((16,), (16,))

    References:
        Ba, Kiros, Hinton. Layer Normalization. 2016. https://arxiv.org/abs/1607.06450.
        Mujika, Meier, Steger. Fast-Slow Recurrent Neural Networks. NeurIPS 2017.
        https://arxiv.org/abs/1705.08639
    """

    unit_local: ClassVar[bool] = False
    weight: Float[Array, "4*hidden hidden+input"]
    gain: Float[Array, "4 hidden"]
    shift: Float[Array, "4 hidden"]
    c_gain: Float[Array, " hidden"]
    c_shift: Float[Array, " hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self, input_size: int, hidden_size: int, *, forget_bias: float = 1.0, key: PRNGKeyArray
    ):
        self.input_size, self.hidden_size = input_size, hidden_size
        n = hidden_size
        self.weight = uniform(key, (4 * n, n + input_size), 1.0 / math.sqrt(n))
        dtype = self.weight.dtype
        self.gain = jnp.ones((4, n), dtype)
        self.shift = jnp.zeros((4, n), dtype).at[1].set(forget_bias)
        self.c_gain = jnp.ones(n, dtype)
        self.c_shift = jnp.zeros(n, dtype)

    def init_state(self) -> LSTMState:
        zeros = jnp.zeros(self.hidden_size, dtype=self.weight.dtype)
        return (zeros, zeros)

    def __call__(self, state: LSTMState, x: Float[Array, " input"]) -> LSTMState:
        h, c = state
        z = (self.weight @ jnp.concatenate([h, x])).reshape(4, self.hidden_size)
        i, f, g, o = _normalise(z, self.gain, self.shift)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(_normalise(c_new, self.c_gain, self.c_shift))
        return (h_new, c_new)

    def features(self, state: LSTMState) -> Float[Array, " hidden"]:
        return state[0]

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def param_units(self):
        raise not_unit_local("LNLSTM", "layer normalisation mixes every unit of a gate block")
