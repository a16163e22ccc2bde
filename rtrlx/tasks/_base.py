"""The task interface: a stream of ``(x_t, y_t)`` generated one step at a time, in JAX."""

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray


class Bound(NamedTuple):
    """What one task parameter may be: an integer or a finite real, in an interval.

    Examples:
        >>> Bound(int, 1).describe()
        'an integer >= 1'
        >>> Bound(float, 0, 1, low_open=True).describe()
        'a finite number in (0, 1]'
    """

    kind: type = int  # int or float
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # the interval excludes ``low``

    def describe(self) -> str:
        """The valid values in words."""
        kind = "an integer" if self.kind is int else "a finite number"
        low, high = _number(self.low), _number(self.high)
        if math.isinf(self.low) and math.isinf(self.high):
            return kind
        if math.isinf(self.high):
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if math.isinf(self.low):
            return f"{kind} <= {high}"
        return f"{kind} in {'(' if self.low_open else '['}{low}, {high}]"

    def contains(self, value: float | int) -> bool:
        """Whether ``value`` lies in the interval."""
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


class Relation(NamedTuple):
    """A condition between task parameters, e.g. ``start <= max_length``."""

    names: tuple[str, ...]  # the parameters it reads, in the order ``holds`` takes them
    holds: Callable[..., bool]
    text: str  # the condition as the error states it


def _number(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _coerce(task: str, name: str, value: Any, bound: Bound) -> int | float:
    """``value`` as ``bound.kind``, or a ``ValueError`` that says what it must be."""

    def refuse(why: str) -> ValueError:
        return ValueError(
            f"task {task!r}: parameter {name} must be {bound.describe()}; got {value!r}{why}."
        )

    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise refuse(", which is not a number") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise refuse(f", a {type(value).__name__}")
    if not math.isfinite(number):
        raise refuse("")
    if bound.kind is int:
        if not float(number).is_integer():
            raise refuse(", which is not an integer")
        number = int(number)
    else:
        number = float(number)
    if not bound.contains(number):
        raise refuse("")
    return number


def check_params(
    task: str,
    values: Mapping[str, Any],
    bounds: Mapping[str, Bound],
    relations: Sequence[Relation] = (),
) -> dict[str, Any]:
    """Task parameters checked and coerced, or a ``ValueError`` naming what is wrong.

    Each error names the task, the parameter, the bad value and the valid values, so that
    a bad ``--task-param`` fails at once rather than deep inside JAX.

    Args:
        task: the task's name, for the messages.
        values: every parameter's value (defaults and overrides together).
        bounds: what each numeric parameter may be; parameters not listed pass unchanged.
        relations: conditions between parameters.

    Returns:
        ``values`` with each bounded parameter converted to its kind (``"30"`` and
        ``30.0`` become ``30`` for an integer).

    Raises:
        ValueError: for a value of the wrong kind, out of range or not finite, or a
            relation that does not hold.

    Examples:
        >>> check_params("adding", {"length": "30"}, {"length": Bound(int, 2)})
        {'length': 30}
    """
    out = dict(values)
    for name, bound in bounds.items():
        if name in out:
            out[name] = _coerce(task, name, out[name], bound)
    for rel in relations:
        if not rel.holds(*(out[n] for n in rel.names)):
            got = ", ".join(f"{n}={out[n]!r}" for n in rel.names)
            raise ValueError(f"task {task!r}: need {rel.text}; got {got}.")
    return out


def scored_mean(total: Any, count: Any) -> float | None:
    """``total / count`` over the scored steps, or None while no step has been scored.

    A metric read before anything was scored is not 0 (which looks like a result): it is
    None (``null`` in the metrics JSON).
    """
    count = float(count)
    return float(total) / count if count > 0 else None


class Task(eqx.Module):
    """A data stream for online learning, gymnax-style: pure functions of explicit state.

    One stream's state advances one time step per :meth:`step`; a batch of streams is a
    ``vmap``. The parameters (``params``, a NamedTuple from :func:`rtrlx.tasks.make`) hold
    the task's numbers and data; ``level`` is the curriculum's current value (a scalar
    shared by all streams; constant for tasks without a curriculum).

    Class attributes: ``metric`` (the headline metric's name), ``higher_is_better``, and
    ``running_mean`` (whether the curriculum's running statistics average the batch's
    streams, True, or sum them, False).
    """

    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    running_mean: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def input_size(self) -> int:
        """Length of ``x_t``."""

    @property
    @abc.abstractmethod
    def output_size(self) -> int:
        """Outputs the head must produce."""

    @abc.abstractmethod
    def init(self, params: Any, key: PRNGKeyArray) -> Any:
        """The state of one stream before its first step."""

    def init_batch(self, params: Any, key: PRNGKeyArray, batch: int) -> Any:
        """The states of ``batch`` streams before their first step, stacked on a leading axis.

        Each stream's :meth:`init` with its own key (``jax.random.split(key, batch)``). A task
        whose streams depend on each other (evenly spaced text offsets) overrides this.
        """
        import jax

        return jax.vmap(self.init, in_axes=(None, 0))(params, jax.random.split(key, batch))

    def init_level(self, params: Any) -> Float[Array, ""]:
        """The curriculum's starting level (0 for a task without a curriculum)."""
        del params
        import jax.numpy as jnp

        return jnp.zeros(())

    @abc.abstractmethod
    def step(
        self, params: Any, level: Array, state: Any, key: PRNGKeyArray
    ) -> tuple[Any, Array, Array]:
        """``(state, x_t, y_t)`` for one stream."""

    @abc.abstractmethod
    def loss(self, out: Array, y: Array) -> Float[Array, ""]:
        """The per-step training loss of one stream (``rtrlx.sequence_grads`` form)."""

    @abc.abstractmethod
    def stats(self, out: Array, y: Array) -> Float[Array, " k"]:
        """Additive statistics of one step of one stream, from which :meth:`report` reads."""

    def init_running(self, params: Any) -> Array | None:
        """The running average of :meth:`stats` a curriculum starts from (None: zeros)."""
        del params
        return None

    def next_level(self, params: Any, level: Array, running: Array) -> tuple[Array, Array]:
        """The curriculum's next level, and the running averages of :meth:`stats` to go on.

        A curriculum restarts the running averages when it moves.
        """
        del params
        return level, running

    @abc.abstractmethod
    def report(self, params: Any, level: Array, totals: Array) -> dict[str, float | None]:
        """Metrics (including :attr:`metric`) from summed :meth:`stats` and the level.

        A metric averaged over scored steps is None while none has been scored
        (:func:`scored_mean`).
        """

    def reset_period(self, params: Any) -> int | None:
        """Steps between synchronous resets of every stream's hidden state (None: never)."""
        del params
        return None

    def restarts(self, params: Any, state: Any) -> Array | None:
        """Whether one stream's memory restarts before its next step, or None for never.

        A task whose streams each restart at their own episode boundaries says so per
        stream; one whose streams never restart one at a time returns None. Training
        restarts the learner's state of each such stream
        (:func:`rtrlx.learners.restart_streams`) before the step's input reaches it.
        """
        del params, state
        return None

    def evaluate(self, params: Any, cell: Any, head: Any) -> dict[str, float]:
        """Held-out metrics of a model (none by default)."""
        del params, cell, head
        return {}
