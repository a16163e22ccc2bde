"""The adding problem."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import Bound, Task, check_params, scored_mean


class AddingParams(NamedTuple):
    """Parameters of ``adding``."""

    length: int = 50  # steps per sequence

    @classmethod
    def checked(cls, **overrides: Any) -> "AddingParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        values = check_params("adding", cls._field_defaults | overrides, ADDING_BOUNDS)
        return cls(**values)


#: Two flagged steps, one in each half of the sequence: at least two steps.
ADDING_BOUNDS = {"length": Bound(int, 2)}


class Adding(Task):
    """The adding problem (Hochreiter and Schmidhuber 1997; as in most RNN benchmarks).

    Each step shows a value uniform in ``[0, 1]`` and a flag. Two steps are flagged, one in
    each half of the sequence. At the last step the target is the sum of the two flagged
    values; no other step is scored. Predicting the mean, 1, gives an MSE of 1/6 (0.167):
    the baseline. The streams are reset together at every sequence. Headline metric: MSE at
    the last step.

    Examples:
        >>> import rtrlx
        >>> task, params = rtrlx.tasks.make("adding", length=20)
        >>> task.input_size, task.output_size, task.reset_period(params)
        (2, 1, 20)
    """

    metric = "mse"
    higher_is_better = False

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    def init(self, params: AddingParams, key: PRNGKeyArray):
        del key
        zero = jnp.zeros((), jnp.int32)
        return (jnp.zeros(params.length), zero, zero, zero)

    def reset_period(self, params: AddingParams) -> int:
        return params.length

    def step(self, params, level, state, key):
        del level
        values, first, second, pos = state
        pos = pos % params.length
        half = params.length // 2
        k_v, k_1, k_2 = jax.random.split(key, 3)
        new = pos == 0
        values = jnp.where(new, jax.random.uniform(k_v, (params.length,)), values)
        first = jnp.where(new, jax.random.randint(k_1, (), 0, half, jnp.int32), first)
        second = jnp.where(
            new, jax.random.randint(k_2, (), half, params.length, jnp.int32), second
        )
        flag = ((pos == first) | (pos == second)).astype(values.dtype)
        x = jnp.stack([values[pos], flag])
        last = (pos == params.length - 1).astype(values.dtype)
        target = values[first] + values[second]
        y = jnp.stack([target, last])  # (target, whether this step is scored)
        return (values, first, second, pos + 1), x, y

    def loss(self, out, y):
        return y[1] * (out[0] - y[0]) ** 2

    def stats(self, out, y):
        return jnp.stack([self.loss(out, y), y[1]])

    def report(self, params, level, totals):
        return {"mse": scored_mean(totals[0], totals[1]), "baseline_mse": 1 / 6}
