"""Array aliases shared by the package."""

from typing import Any, TypeAlias

from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

#: A cell's recurrent state: one array, or a tuple of arrays, each of shape ``(hidden,)``.
State: TypeAlias = PyTree[Array]
#: Gradients shaped like ``eqx.filter(module, eqx.is_inexact_array)``.
Grads: TypeAlias = PyTree[Any]
Scalar: TypeAlias = Float[Array, ""]

__all__ = ["Array", "Float", "Grads", "Int", "PRNGKeyArray", "PyTree", "Scalar", "State"]
