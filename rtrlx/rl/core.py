"""The agent's network: a recurrent core (an rtrlx cell) and an actor-critic head.

The head maps the core's features to one vector ``[v, logits_1..A]``: the value estimate
first, then the policy's logits. Every agent in :mod:`rtrlx.rl` uses this layout, so the
per-step losses they hand to an rtrlx learner are functions of that one output.
"""

import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._tree import reset_where as reset_where
from ..cells import GRU, LRU, RTU
from ..cells._base import AbstractCell

#: Recurrent cores by name, and the learner each uses unless told otherwise.
CORES: dict[str, str] = {
    "rtu": "diag_rtrl",  # linear RTU: exact element-wise RTRL
    "rtu-nonlinear": "diag_rtrl",
    "lru": "diag_rtrl",
    "gru": "tbptt:16",
}


def make_core(name: str, input_size: int, hidden: int, *, key: PRNGKeyArray) -> AbstractCell:
    """A recurrent core by its name in :data:`CORES`.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name == "rtu":
        return RTU(input_size, hidden, key=key)
    if name == "rtu-nonlinear":
        return RTU(input_size, hidden, nonlinear=True, key=key)
    if name == "lru":
        return LRU(input_size, hidden, key=key)
    if name == "gru":
        return GRU(input_size, hidden, key=key)
    raise ValueError(f"unknown core {name!r}; valid cores: {', '.join(CORES)}.")


def recurrent_params(name: str, input_size: int, hidden: int) -> int:
    """Number of trainable parameters of the core ``name`` with ``hidden`` units."""
    shapes = eqx.filter_eval_shape(make_core, name, input_size, hidden, key=jax.random.key(0))
    return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))


def width_for(name: str, input_size: int, budget: int) -> int:
    """The most units the core ``name`` can have within ``budget`` recurrent parameters.

    Used to compare cores at an equal number of recurrent parameters.

    Raises:
        ValueError: when even one unit exceeds the budget.
    """
    if recurrent_params(name, input_size, 1) > budget:
        raise ValueError(
            f"--recurrent-params {budget} is too small for one {name} unit on input "
            f"{input_size}; give at least {recurrent_params(name, input_size, 1)}."
        )
    lo, hi = 1, 2
    while recurrent_params(name, input_size, hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # parameters grow with the width: bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if recurrent_params(name, input_size, mid) <= budget else (lo, mid)
    return lo


class ActorCriticHead(eqx.Module):
    """Value and policy heads on the core's features: ``[v, logits]``.

    Args:
        features: length of the core's feature vector (``cell.output_size``).
        actions: number of discrete actions (1 for a prediction task: then the policy is
            trivial and only the value learns).
        width: hidden width of each head's MLP (0: linear heads).
        key: PRNG key.
    """

    value: eqx.nn.MLP
    policy: eqx.nn.MLP

    def __init__(self, features: int, actions: int, width: int = 64, *, key: PRNGKeyArray):
        k_v, k_p = jax.random.split(key)
        depth = 1 if width else 0
        self.value = eqx.nn.MLP(features, 1, width or 1, depth, jax.nn.tanh, key=k_v)
        self.policy = eqx.nn.MLP(features, actions, width or 1, depth, jax.nn.tanh, key=k_p)

    def __call__(self, features: Array) -> Array:
        """``[v, logits]`` from the core's features."""
        return jnp.concatenate([self.value(features), self.policy(features)])


def split_output(out: Array) -> tuple[Array, Array]:
    """``(value, log-probabilities)`` from a head output ``[v, logits]``."""
    return out[0], jax.nn.log_softmax(out[1:])


def entropy(log_probs: Array) -> Array:
    """Entropy of a categorical distribution from its log-probabilities."""
    return -jnp.sum(jnp.exp(log_probs) * log_probs)


class Agent(NamedTuple):
    """An agent as pure functions, for :func:`rtrlx.rl.train`.

    Attributes:
        init: ``init(key) -> state``.
        chunk: ``chunk(state, iterations) -> (state, records)``, ``iterations`` static;
            ``records`` holds ``reward``, ``done``, ``value`` and ``episode_return`` (the
            return of the episode that ended, where ``done``), each ``(time, streams)``.
        steps_per_iteration: environment steps of one stream per iteration.
        streams: parallel environment streams per seed.
        network: ``network(state) -> (cell, head)``.
        gamma: the discount in use.
        parts: the agent's inner functions by name, for tests and inspection.
    """

    init: Any
    chunk: Any
    steps_per_iteration: int
    streams: int
    network: Any
    gamma: float
    parts: dict | None = None


def env_gamma(params: Any, gamma: float | None) -> float:
    """The discount: ``gamma`` if given, else the environment's, else 0.99."""
    if gamma is not None:
        return gamma
    return float(getattr(params, "gamma", 0.99))


def build_network(cell_factory: Any, env: Any, head_width: int, key: Any) -> tuple:
    """``(cell, head)``: the core from ``cell_factory(key)`` and an actor-critic head."""
    k_cell, k_head = jax.random.split(key)
    cell = cell_factory(k_cell)
    head = ActorCriticHead(cell.output_size, env.num_actions, head_width, key=k_head)
    return cell, head
