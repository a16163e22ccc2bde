"""TensorFlow 1's Adam, for runs that reproduce code written against it."""

from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

__all__ = ["adam_tf1"]


class AdamTF1State(NamedTuple):
    """The update count and the two moment estimates (as ``optax.adam`` keeps them)."""

    count: jax.Array
    mu: Any
    nu: Any


def adam_tf1(
    learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam as ``tf.compat.v1.train.AdamOptimizer`` computes it ("epsilon hat").

    TensorFlow 1 adds ``eps`` to ``sqrt(v)`` before the bias correction, and corrects the
    step size instead: ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    ``optax.adam`` adds ``eps`` after it: ``lr * m_hat / (sqrt(v_hat) + eps)``. The two
    differ only through ``eps``, whose weight in TensorFlow 1's form is ``1 / sqrt(1 - b2^t)``
    times larger (31.6 at the first update, 1.26 at the 1000th, 1.0 from about 10,000 on),
    and only for parameters whose gradients are as small as ``eps``: code that scales a
    gradient down (the OK code divides its recurrent gradient by the batch size twice)
    makes that weight matter.

    Args:
        learning_rate: the step size.
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to ``sqrt(v)``, before the bias correction.

    Returns:
        An ``optax.GradientTransformation`` whose updates are to be added to the parameters.

    Examples:
        >>> import jax.numpy as jnp
        >>> opt = adam_tf1(0.1)
        >>> params = jnp.zeros(2)
        >>> updates, state = opt.update(jnp.array([1.0, -2.0]), opt.init(params))
        >>> [round(float(u), 4) for u in updates]
        [-0.1, 0.1]

    References:
        Kingma and Ba. Adam: a method for stochastic optimization. ICLR 2015, section 2
        (the reordered computation, with epsilon-hat, that TensorFlow 1 implements).
        https://arxiv.org/abs/1412.6980
    """

    def init(params: optax.Params) -> AdamTF1State:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamTF1State(count=jnp.zeros((), jnp.int32), mu=zeros, nu=zeros)

    def update(updates: optax.Updates, state: optax.OptState, params=None):
        del params
        state = cast(AdamTF1State, state)
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)

        def one(m, v):
            t = count.astype(m.dtype)
            step = learning_rate * jnp.sqrt(1 - b2**t) / (1 - b1**t)
            return -step * m / (jnp.sqrt(v) + eps)

        return jax.tree.map(one, mu, nu), AdamTF1State(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)
