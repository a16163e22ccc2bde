"""Ground-floor helpers on pytrees that every layer shares: keys, resets, dtype promotion.

They sit here, below cells, learners, training and RL, so that no package imports another's
private helpers.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array


def is_key(a: Any) -> bool:
    """Whether ``a`` is a typed PRNG key array (``jax.random.key``)."""
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def keys_to_data(tree: Any) -> Any:
    """``tree`` with every typed PRNG key replaced by its raw ``uint32`` data (serialisable)."""
    return jax.tree.map(lambda a: jax.random.key_data(a) if is_key(a) else a, tree)


def data_to_keys(tree: Any, like: Any) -> Any:
    """Inverse of :func:`keys_to_data`: typed keys wherever ``like`` has them."""
    return jax.tree.map(lambda a, b: jax.random.wrap_key_data(a) if is_key(b) else a, tree, like)


def reset_where(done: Array, state: Any, fresh: Any) -> Any:
    """``fresh`` where ``done`` (per stream: ``done`` has the state's leading batch shape).

    PRNG keys are not memory: they keep running, so that an episode (or a sequence) after a
    reset does not replay the previous one's random draws.

    Args:
        done: booleans, ``()`` or ``(batch,)``.
        state: the current state (a learner's or a cell's).
        fresh: the state to restart from, with the same structure.

    Returns:
        The state with every non-key leaf taken from ``fresh`` where ``done``.

    Examples:
        >>> import jax.numpy as jnp
        >>> state = reset_where(jnp.array([True, False]), jnp.ones((2, 3)), jnp.zeros((2, 3)))
        >>> state[:, 0].tolist()
        [0.0, 1.0]
    """

    def pick(new, old):
        if is_key(old):
            return old
        d = jnp.reshape(done, jnp.shape(done) + (1,) * (old.ndim - jnp.ndim(done)))
        return jnp.where(d, new, old)

    return jax.tree.map(pick, fresh, state)


@contextlib.contextmanager
def standard_promotion() -> Iterator[None]:
    """Standard dtype promotion inside, whatever the user set.

    optax and gymnax mix Python floats with int32 counters; under
    ``jax_numpy_dtype_promotion="strict"`` (rtrlx's tests, and some users) that raises.
    """
    with jax.numpy_dtype_promotion("standard"):
        yield


def with_standard_promotion(fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` under :func:`standard_promotion`."""
    with standard_promotion():
        return fn(*args)


def default_float() -> Any:
    """The default float dtype (float64 when x64 is enabled)."""
    return jnp.zeros(()).dtype
