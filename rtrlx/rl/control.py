"""Partially observable control from gymnax: position-only CartPole and Pendulum, MemoryChain.

The wrapped environment keeps gymnax's dynamics, rewards and episode ends; the wrapper only
hides observation entries (the velocities) and, for Pendulum, maps a discrete action to a
torque. gymnax's step returns ``terminated`` and ``truncated`` separately; here ``done`` is
either, and both are in ``info``.

Reference: Lange. gymnax: A JAX-based reinforcement learning environment library. 2022.
https://github.com/RobertTLange/gymnax
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._base import Environment

#: name -> (gymnax id, observation entries kept, torques for discrete actions or None)
CONTROL: dict[str, tuple[str, tuple[int, ...] | None, tuple[float, ...] | None]] = {
    # CartPole's observation is [x, x_dot, theta, theta_dot]: keep the positions.
    "CartPolePositionOnly": ("CartPole-v1", (0, 2), None),
    # Pendulum's is [cos theta, sin theta, theta_dot]: keep the angle.
    "PendulumPositionOnly": ("Pendulum-v1", (0, 1), (-2.0, -1.0, 0.0, 1.0, 2.0)),
    "MemoryChain": ("MemoryChain-bsuite", None, None),
}


def _gymnax() -> Any:
    try:
        import gymnax
    except ImportError as err:  # pragma: no cover - gymnax is a dependency
        raise ImportError(
            f"rtrlx.rl's control environments wrap gymnax ({err}); pip install gymnax six"
        ) from None
    return gymnax


class GymnaxControl(Environment):
    """A gymnax environment with some observation entries hidden (see :data:`CONTROL`)."""

    name: str = eqx.field(static=True)
    env: Any = eqx.field(static=True)
    keep: tuple[int, ...] | None = eqx.field(static=True)
    torques: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(self, name: str):
        if name not in CONTROL:
            raise ValueError(f"unknown control environment {name!r}; valid: {', '.join(CONTROL)}.")
        gymnax_id, self.keep, self.torques = CONTROL[name]
        self.name = name
        self.env, _ = _gymnax().make(gymnax_id)

    @property
    def observation_size(self) -> int:
        if self.keep is not None:
            return len(self.keep)
        shape = self.env.observation_space(self.env.default_params).shape
        return int(np.prod(shape))

    @property
    def num_actions(self) -> int:
        if self.torques is not None:
            return len(self.torques)
        return int(self.env.num_actions)

    def default_params(self) -> Any:
        return self.env.default_params

    def observe(self, obs: Array) -> Array:
        """The visible part of a gymnax observation, as a flat float vector."""
        obs = jnp.ravel(obs).astype(jnp.zeros(()).dtype)
        return obs if self.keep is None else obs[jnp.asarray(self.keep)]

    def _action(self, action: Array) -> Array:
        if self.torques is None:
            return action
        return jnp.asarray(self.torques)[action]

    # gymnax relies on NumPy's implicit type promotion: run it under "standard" promotion
    # even when the caller has made JAX strict.
    def reset_env(self, key, params):
        with jax.numpy_dtype_promotion("standard"):
            obs, state = self.env.reset_env(key, params)
        return self.observe(obs), state

    def step_env(self, key, state, action, params):
        with jax.numpy_dtype_promotion("standard"):
            obs, state, reward, terminated, info = self.env.step_env(
                key, state, self._action(action), params
            )
            truncated = self.env.is_truncated(state, params)
        done = jnp.logical_or(terminated, truncated)
        info = {**info, "terminated": terminated, "truncated": truncated}
        return self.observe(obs), state, jnp.asarray(reward), done, info

    def step(self, key, state, action, params=None):
        params = self.default_params() if params is None else params
        with jax.numpy_dtype_promotion("standard"):
            obs, state, reward, terminated, truncated, info = self.env.step(
                key, state, self._action(action), params
            )
        info = {**info, "terminated": terminated, "truncated": truncated}
        return self.observe(obs), state, reward, jnp.logical_or(terminated, truncated), info
