"""The test suite runs with jaxtyping's run-time checking of rtrlx's annotations (beartype)."""

import jax.numpy as jnp
import jaxtyping
import pytest

import rtrlx


def test_annotations_are_checked_at_run_time():
    """``mse`` is annotated ``(Float[Array, " out"], Float[Array, " out"])``: a scalar target
    would broadcast silently, and the checker refuses it."""
    with pytest.raises(jaxtyping.TypeCheckError):
        rtrlx.losses.mse(jnp.ones(3), jnp.ones(()))
