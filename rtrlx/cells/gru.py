"""The gated recurrent unit."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ._base import AbstractCell, KronFactor, uniform


class GRU(AbstractCell):
    """Gated recurrent unit (Cho et al. 2014) in the cuDNN/PyTorch form.

    ``r = σ(W_xr x + W_hr h + b_r)``, ``z = σ(W_xz x + W_hz h + b_z)``,
    ``c = tanh(W_xc x + b_xc + r ⊙ (W_hc h + b_hc))``, ``h' = (1 - z) ⊙ c + z ⊙ h``.
    The reset gate scales the recurrent product after the matmul, so each weight row drives
    one unit within one step. ``w_x`` acts on ``x`` and ``w_h`` on ``h``: each is its own
    Kronecker factor.

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        key: PRNG key for the initial weights (uniform on ``±1/sqrt(n)``).

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.GRU(4, 16, key=jax.random.key(0))
        >>> cell(cell.init_state(), jax.numpy.ones(4)).shape
        (16,)
    """

    w_x: Float[Array, "3*hidden input"]
    w_h: Float[Array, "3*hidden hidden"]
    b_x: Float[Array, " 3*hidden"]
    b_h: Float[Array, " 3*hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray):
        self.input_size, self.hidden_size = input_size, hidden_size
        n, bound = hidden_size, 1.0 / math.sqrt(hidden_size)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.w_x = uniform(k1, (3 * n, input_size), bound)
        self.w_h = uniform(k2, (3 * n, n), bound)
        self.b_x = uniform(k3, (3 * n,), bound)
        self.b_h = uniform(k4, (3 * n,), bound)

    def init_state(self) -> Float[Array, " hidden"]:
        return jnp.zeros(self.hidden_size, dtype=self.b_h.dtype)

    def __call__(self, state: Float[Array, " hidden"], x: Float[Array, " input"]):
        return self.from_preactivations(state, x, self.preactivations(state, x))

    def kron_factors(self) -> tuple[KronFactor, ...]:
        return (KronFactor("w_x", "b_x"), KronFactor("w_h", "b_h"))

    def kron_inputs(self, state: State, x: Float[Array, " input"]) -> tuple[Array, ...]:
        return (x, state)

    def from_preactivations(self, state: State, x: Array, pre: tuple[Array, ...]) -> State:
        n = self.hidden_size
        gx, gh = pre
        r = jax.nn.sigmoid(gx[:n] + gh[:n])
        z = jax.nn.sigmoid(gx[n : 2 * n] + gh[n : 2 * n])
        c = jnp.tanh(gx[2 * n :] + r * gh[2 * n :])
        return (1 - z) * c + z * state

    def features(self, state: Float[Array, " hidden"]) -> Float[Array, " hidden"]:
        return state

    @property
    def output_size(self) -> int:
        return self.hidden_size
