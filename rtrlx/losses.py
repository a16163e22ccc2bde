"""Per-step losses ``loss_fn(prediction, target) -> scalar``, for one example (no batch axis).

:func:`rtrlx.sequence_grads` sums them over time and averages them over the batch.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = ["bits", "cross_entropy", "mse"]


def mse(prediction: Float[Array, " out"], target: Float[Array, " out"]) -> Float[Array, ""]:
    """Mean squared error over the output entries.

    Examples:
        >>> import jax.numpy as jnp
        >>> float(mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])))
        2.5
    """
    return jnp.mean((prediction - target) ** 2)


def cross_entropy(logits: Float[Array, " classes"], label: Int[Array, ""]) -> Float[Array, ""]:
    """Softmax cross-entropy in nats of an integer ``label`` under ``logits``.

    Examples:
        >>> import jax.numpy as jnp
        >>> round(float(cross_entropy(jnp.zeros(4), jnp.array(2))), 4)
        1.3863
    """
    return -jax.nn.log_softmax(logits)[label]


def bits(logits: Float[Array, " classes"], label: Int[Array, ""]) -> Float[Array, ""]:
    """Softmax cross-entropy in bits (bits per character when a step is a character).

    Examples:
        >>> import jax.numpy as jnp
        >>> float(bits(jnp.zeros(4), jnp.array(2)))
        2.0
    """
    return cross_entropy(logits, label) / math.log(2.0)
