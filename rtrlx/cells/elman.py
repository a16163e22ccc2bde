"""The Elman (vanilla tanh) recurrent cell."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ._base import AbstractCell, KronFactor, uniform


class Elman(AbstractCell):
    """Elman cell, ``h' = (1 - α) h + α tanh(W [h; x] + b)``, optionally sparse.

    ``α = 1`` (the default) is the plain tanh RNN; ``α < 1`` is the leaky RNN of RFLO and
    of Marschall et al.'s framework. The weight acts on ``[h; x]``, so KF-RTRL and OK can use
    its Kronecker structure (not when sparse: a mask breaks it).
    With ``density < 1`` a fixed random mask (drawn from ``mask_seed``) keeps that fraction of
    the recurrent connections (the diagonal is always kept): the sparse networks of SnAp.

    Args:
        input_size: length of ``x``.
        hidden_size: number of units ``n``.
        density: fraction of recurrent connections kept, in ``(0, 1]``.
        mask_seed: seed of the sparsity mask.
        alpha: the leak ``α`` in ``(0, 1]``.
        key: PRNG key for the initial weights.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.Elman(3, 8, key=jax.random.key(0))
        >>> cell(cell.init_state(), jax.numpy.ones(3)).shape
        (8,)
    """

    weight: Float[Array, "hidden hidden+input"]
    bias: Float[Array, " hidden"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    density: float = eqx.field(static=True)
    mask_seed: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        density: float = 1.0,
        mask_seed: int = 0,
        alpha: float = 1.0,
        key: PRNGKeyArray,
    ):
        if not 0.0 < density <= 1.0:
            raise ValueError(f"Elman: density must be in (0, 1], got {density}.")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Elman: alpha (the leak) must be in (0, 1], got {alpha}.")
        self.alpha = float(alpha)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.density, self.mask_seed = density, mask_seed
        bound = 1.0 / math.sqrt(hidden_size)
        kw, kb = jax.random.split(key)
        self.weight = uniform(kw, (hidden_size, hidden_size + input_size), bound)
        self.bias = uniform(kb, (hidden_size,), bound)

    def init_state(self) -> Float[Array, " hidden"]:
        return jnp.zeros(self.hidden_size, dtype=self.bias.dtype)

    def connectivity(self) -> np.ndarray:
        n = self.hidden_size
        if self.density >= 1.0:
            return np.ones((n, n), dtype=bool)
        mask = np.random.default_rng(self.mask_seed).random((n, n)) < self.density
        return mask | np.eye(n, dtype=bool)

    def __call__(self, state: Float[Array, " hidden"], x: Float[Array, " input"]):
        w = self.weight
        if self.density < 1.0:
            n = self.hidden_size
            keep = np.concatenate(
                [self.connectivity(), np.ones((n, self.input_size), dtype=bool)], axis=1
            )
            w = jnp.where(keep, w, jnp.zeros((), w.dtype))
        return self._leak(state, jnp.tanh(w @ jnp.concatenate([state, x]) + self.bias))

    def _leak(self, state: Array, new: Array) -> Array:
        return new if self.alpha == 1.0 else (1 - self.alpha) * state + self.alpha * new

    def kron_factors(self) -> tuple[KronFactor, ...]:
        return () if self.density < 1.0 else (KronFactor("weight", "bias"),)

    def kron_inputs(self, state: State, x: Float[Array, " input"]) -> tuple[Array, ...]:
        return (jnp.concatenate([state, x]),)

    def from_preactivations(self, state: State, x: Array, pre: tuple[Array, ...]) -> State:
        return self._leak(state, jnp.tanh(pre[0]))

    def features(self, state: Float[Array, " hidden"]) -> Float[Array, " hidden"]:
        return state

    @property
    def output_size(self) -> int:
        return self.hidden_size
