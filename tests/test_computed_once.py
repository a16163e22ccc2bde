"""computed_once: the values, their derivatives and batching are those of the identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrlx._tree import computed_once


def test_values_pass_through_exactly():
    x = jax.random.normal(jax.random.key(0), (7, 3))
    y = jnp.exp(x)
    got = computed_once(jnp.cos(x), jnp.sin(x), y)
    for a, b in zip(got, (jnp.cos(x), jnp.sin(x), y), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    (alone,) = computed_once(y)  # the one-array path
    np.testing.assert_array_equal(alone, y)
    z = jax.lax.complex(x, y)
    np.testing.assert_array_equal(computed_once(z, 2 * z)[1], 2 * z)


def test_derivatives_and_batching_are_the_identitys():
    x = jax.random.normal(jax.random.key(1), (5,))

    def f(x):
        a, b = computed_once(jnp.cos(x), x**2)
        return jnp.sum(a * b)

    def plain(x):
        return jnp.sum(jnp.cos(x) * x**2)

    np.testing.assert_allclose(jax.grad(f)(x), jax.grad(plain)(x), rtol=1e-12)
    t = jnp.arange(5.0)
    np.testing.assert_allclose(jax.jvp(f, (x,), (t,))[1], jax.jvp(plain, (x,), (t,))[1])
    batch = jax.random.normal(jax.random.key(2), (4, 5))
    a, b = jax.vmap(lambda u: computed_once(u, x))(batch)  # one argument batched
    np.testing.assert_array_equal(a, batch)
    np.testing.assert_array_equal(b, jnp.broadcast_to(x, (4, 5)))


def test_arrays_of_different_sizes_or_dtypes_are_refused():
    with pytest.raises(ValueError, match="one size and dtype"):
        computed_once(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="one size and dtype"):
        computed_once(jnp.ones(3), jnp.ones(3, jnp.float32))
