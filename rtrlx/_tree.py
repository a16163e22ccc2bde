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


def computed_once(*arrays: Array) -> tuple[Array, ...]:
    """The arrays unchanged, but computed once, not once per element of their consumers.

    XLA:CPU fuses an element-wise producer into every consumer, and recomputes it for each
    element the consumer writes: a per-unit value such as ``r cos θ`` of the LRU's or RTU's
    parameters, broadcast over a batch of traces, is then evaluated (``exp``, ``cos``,
    ``sin``) for every trace entry. Inside a training loop, whose parameters change at every
    step, that cost cannot be hoisted out of the loop; for element-wise RTRL on an LRU with
    n = 256 it was 22% of a step. On the CPU the arrays therefore go through a product with
    the identity: a dot, which XLA does not fuse into its consumers (it removes
    ``lax.optimization_barrier`` before fusion), so they are written once. Elsewhere they
    pass through untouched (``lax.platform_dependent``).

    The product is exact for finite values (each entry is one value times 1 plus zeros, at
    ``Precision.HIGHEST``) up to the sign of a zero; a non-finite entry makes the entries of
    its position in every array NaN, so pass only values that are finite wherever the
    others are used.

    Args:
        *arrays: arrays of one size and one dtype.

    Returns:
        The same values, in the same shapes.

    Raises:
        ValueError: for arrays of different sizes or dtypes.

    Examples:
        >>> import jax.numpy as jnp
        >>> cos, sin = computed_once(jnp.cos(jnp.arange(3.0)), jnp.sin(jnp.arange(3.0)))
        >>> bool(jnp.all(cos == jnp.cos(jnp.arange(3.0))))
        True
    """
    if len({(a.size, a.dtype) for a in arrays}) != 1:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in arrays)
        raise ValueError(f"computed_once takes arrays of one size and dtype, got {shapes}.")

    def through_a_dot(*arrays: Array) -> tuple[Array, ...]:
        columns = [a.reshape(-1) for a in arrays]
        if len(columns) == 1:  # a product of width 1 would be rewritten as a multiply, fused
            columns.append(jnp.zeros_like(columns[0]))
        stacked = jnp.stack(columns, axis=1)
        eye = jnp.eye(len(columns), dtype=stacked.dtype)
        out = jnp.matmul(stacked, eye, precision=jax.lax.Precision.HIGHEST)
        return tuple(out[:, i].reshape(a.shape) for i, a in enumerate(arrays))

    return jax.lax.platform_dependent(*arrays, cpu=through_a_dot, default=lambda *a: a)
