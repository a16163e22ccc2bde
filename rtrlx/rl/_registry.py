"""Environments by name: ``rtrlx.rl.make``."""

from typing import Any

from ._base import Environment
from .conditioning import TraceConditioning, TracePatterning
from .control import CONTROL, GymnaxControl
from .popgym import Autoencode, CountRecall, HigherLower, RepeatFirst, RepeatPrevious

#: Every environment by name (POPGym's names for its tasks).
ENVIRONMENTS: dict[str, type[Environment]] = {
    "RepeatPreviousEasy": RepeatPrevious,
    "RepeatFirstEasy": RepeatFirst,
    "CountRecallEasy": CountRecall,
    "AutoencodeEasy": Autoencode,
    "HigherLowerEasy": HigherLower,
    "TraceConditioning": TraceConditioning,
    "TracePatterning": TracePatterning,
}


def make(name: str) -> tuple[Environment, Any]:
    """An environment and its default parameters, by name (as ``gymnax.make``).

    Args:
        name: one of :data:`ENVIRONMENTS` or :data:`CONTROL` (gymnax-wrapped).

    Returns:
        ``(env, params)``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.

    Examples:
        >>> import jax
        >>> env, params = make("RepeatPreviousEasy")
        >>> obs, state = env.reset(jax.random.key(0), params)
        >>> obs.shape, env.num_actions
        ((4,), 4)
    """
    if name in CONTROL:
        env = GymnaxControl(name)
        return env, env.default_params()
    if name not in ENVIRONMENTS:
        raise ValueError(
            f"unknown environment {name!r}; valid environments: "
            f"{', '.join([*ENVIRONMENTS, *CONTROL])}."
        )
    env = ENVIRONMENTS[name]()
    return env, env.default_params()
