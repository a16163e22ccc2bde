"""The task interface: a stream of ``(x_t, y_t)`` generated one step at a time, in JAX."""

import abc
from typing import Any, ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray


class Task(eqx.Module):
    """A data stream for online learning, gymnax-style: pure functions of explicit state.

    One stream's state advances one time step per :meth:`step`; a batch of streams is a
    ``vmap``. The parameters (``params``, a NamedTuple from :func:`rtrlx.tasks.make`) hold
    the task's numbers and data; ``level`` is the curriculum's current value (a scalar
    shared by all streams; constant for tasks without a curriculum).

    Class attributes: ``metric`` (the headline metric's name) and ``higher_is_better``.
    """

    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

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
    def report(self, params: Any, level: Array, totals: Array) -> dict[str, float]:
        """Metrics (including :attr:`metric`) from summed :meth:`stats` and the level."""

    def reset_period(self, params: Any) -> int | None:
        """Steps between synchronous resets of every stream's hidden state (None: never)."""
        del params
        return None

    def evaluate(self, params: Any, cell: Any, head: Any) -> dict[str, float]:
        """Held-out metrics of a model (none by default)."""
        del params, cell, head
        return {}
