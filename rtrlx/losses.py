"""Per-step losses ``loss_fn(prediction, target) -> scalar``, for one example (no batch axis).

:func:`rtrlx.sequence_grads` sums them over time and averages them over the batch.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = ["bits", "cross_entropy", "mse", "soft_cross_entropy"]


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


def soft_cross_entropy(
    logits: Float[Array, " classes"], target: Float[Array, " classes"]
) -> Float[Array, ""]:
    """Cross-entropy in nats against a target distribution; an all-zero target costs 0.

    The zero target marks a step with nothing to predict (the presentation phase of a copy
    task), so one stream of steps can mix scored and unscored steps.

    Examples:
        >>> import jax.numpy as jnp
        >>> round(float(soft_cross_entropy(jnp.zeros(2), jnp.array([0.0, 1.0]))), 4)
        0.6931
        >>> float(soft_cross_entropy(jnp.zeros(2), jnp.zeros(2))) == 0.0
        True
    """
    return -jnp.sum(target * jax.nn.log_softmax(logits))
