"""What the composite cells (FSRNN, Stacked) share: sub-states side by side, zoneout, dropout.

A composite keeps its sub-cells' states concatenated leaf by leaf: an LSTM-block composite of
sizes ``(n1, n2)`` has the state ``(h, c)`` with ``h = [h1; h2]`` and ``c = [c1; c2]``, so
its unit view is ``(2, n1 + n2)``, one column per unit of any sub-cell, and every learner's
contract holds without padding. All sub-cells therefore share one block type.
"""

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._errors import UnsupportedCellError
from .._types import State


def split_state(state: State, sizes: Sequence[int]) -> list[State]:
    """The sub-states of a composite state whose leaves concatenate blocks of ``sizes``."""
    cuts = np.cumsum([0, *sizes])
    return [jax.tree.map(lambda a, i=i, j=j: a[i:j], state) for i, j in itertools.pairwise(cuts)]


def join_states(states: Sequence[State]) -> State:
    """The composite state: each leaf the concatenation of the sub-states' leaves."""
    return jax.tree.map(lambda *a: jnp.concatenate(a), *states)


def zoneout(
    old: State, new: State, rates: tuple[float, float], key: PRNGKeyArray | None = None
) -> State:
    """Zoneout (Krueger et al. 2017): each unit keeps its old value with probability ``rate``.

    The first leaf (an LSTM's ``h``) has rate ``rates[0]``, every other leaf (``c``)
    ``rates[1]``. With ``key`` None the step is the expectation ``rate·old + (1-rate)·new``
    (the deterministic form used at evaluation, and by every learner); with a key each unit
    draws its own Bernoulli mask.
    """
    leaves_old, treedef = jax.tree.flatten(old)
    leaves_new = treedef.flatten_up_to(new)
    keys = (
        [None] * len(leaves_old) if key is None else list(jax.random.split(key, len(leaves_old)))
    )
    out = []
    for i, (a, b, k) in enumerate(zip(leaves_old, leaves_new, keys, strict=True)):
        rate = rates[0] if i == 0 else rates[1]
        if rate == 0.0:
            out.append(b)
        elif k is None:
            out.append(rate * a + (1 - rate) * b)
        else:
            out.append(jnp.where(jax.random.bernoulli(k, rate, a.shape), a, b))
    return jax.tree.unflatten(treedef, out)


def dropout(x: jax.Array, rate: float, key: PRNGKeyArray | None) -> jax.Array:
    """Inverted dropout: zero each entry with probability ``rate`` and scale the rest up.

    With ``key`` None (evaluation) or ``rate`` 0 it is the identity.
    """
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


def check_rate(name: str, value: float) -> None:
    """Refuse a zoneout or dropout rate outside ``[0, 1)``."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")


def not_unit_local(cls_name: str, why: str) -> UnsupportedCellError:
    """The error a composite's ``param_units()`` raises: which learners apply instead."""
    return UnsupportedCellError(
        f"{cls_name} is not unit-local ({why}), so SnAp, element-wise RTRL, KF-RTRL and OK "
        "do not apply to it. Use rtrlx.rtrl() (exact), rtrlx.uoro(), rtrlx.bptt() or "
        "rtrlx.tbptt(k) on it."
    )


def block_sizes_ok(name: str, **sizes: Any) -> None:
    """Refuse a size below 1, naming it."""
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: {key} must be an integer >= 1, got {value!r}.")
