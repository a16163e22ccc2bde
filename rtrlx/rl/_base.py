"""The environment interface of ``rtrlx.rl``: gymnax's, pure and jittable."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Environment(eqx.Module):
    """A partially observable environment as pure functions of explicit state (gymnax API).

    ``reset(key, params) -> (obs, state)`` and ``step(key, state, action, params) -> (obs,
    state, reward, done, info)``. ``step`` resets automatically when an episode ends: the
    returned observation and state are then those of a fresh episode, and ``done`` is True
    (as in gymnax). :meth:`step_env` is the step without the reset. Observations are float
    vectors of length :attr:`observation_size`; actions are integers below
    :attr:`num_actions`. Every method works under ``jit`` and ``vmap``.
    """

    @property
    @abc.abstractmethod
    def observation_size(self) -> int:
        """Length of the observation vector."""

    @property
    @abc.abstractmethod
    def num_actions(self) -> int:
        """Number of discrete actions."""

    def default_params(self) -> Any:
        """The environment's parameters (its fixed numbers); none by default."""
        return None

    @abc.abstractmethod
    def reset_env(self, key: PRNGKeyArray, params: Any) -> tuple[Float[Array, " obs"], Any]:
        """A fresh episode: ``(obs, state)``."""

    @abc.abstractmethod
    def step_env(
        self, key: PRNGKeyArray, state: Any, action: Array, params: Any
    ) -> tuple[Float[Array, " obs"], Any, Float[Array, ""], Array, dict]:
        """One step without the automatic reset: ``(obs, state, reward, done, info)``."""

    def reset(self, key: PRNGKeyArray, params: Any = None) -> tuple[Array, Any]:
        """A fresh episode: ``(obs, state)``."""
        return self.reset_env(key, self.default_params() if params is None else params)

    def step(
        self, key: PRNGKeyArray, state: Any, action: Array, params: Any = None
    ) -> tuple[Array, Any, Array, Array, dict]:
        """One step; a finished episode is replaced by a fresh one (``done`` stays True)."""
        params = self.default_params() if params is None else params
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, done, info = self.step_env(k_step, state, action, params)
        obs_new, state_new = self.reset_env(k_reset, params)
        obs = jnp.where(done, obs_new, obs)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state_new, state)
        return obs, state, reward, done, info
