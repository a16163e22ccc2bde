"""Influence balancing: the synthetic task of UORO where truncation gets the sign wrong."""

from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ..cells._base import AbstractCell, KronFactor
from ._base import Bound, Relation, Task, check_params


class InfluenceCell(AbstractCell):
    """The linear system of UORO's influence balancing: ``s' = A s + θ v``.

    ``A = 0.5 I + 0.5 S`` (``S`` the shift: unit ``i`` also reads unit ``i + 1``) and ``v``
    is ``+1`` on the first ``positive`` units and ``-1`` on the rest. Raising the one
    parameter ``θ`` raises unit 0 at once but, through the chain of negative units, lowers
    it in the long run. The input is ignored. ``θ`` enters as a ``1 x 1`` matrix times the
    constant ``a = [1]``, so KF-RTRL and OK apply.
    """

    theta: Float[Array, "1 1"]
    input_size: int = eqx.field(static=True)
    unit_local: ClassVar[bool] = False  # theta drives every unit at once
    hidden_size: int = eqx.field(static=True)
    positive: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 23,
        *,
        positive: int = 10,
        theta: float = 0.5,
        key: PRNGKeyArray | None = None,
    ):
        del key
        self.input_size, self.hidden_size, self.positive = input_size, hidden_size, positive
        self.theta = jnp.full((1, 1), theta)

    def _signs(self) -> np.ndarray:
        n = self.hidden_size
        return np.where(np.arange(n) < self.positive, 1.0, -1.0)

    def init_state(self) -> Float[Array, " hidden"]:
        return jnp.zeros(self.hidden_size, self.theta.dtype)

    def __call__(self, state: State, x: Array) -> State:
        return self.from_preactivations(state, x, self.preactivations(state, x))

    def kron_factors(self) -> tuple[KronFactor, ...]:
        return (KronFactor("theta"),)

    def kron_inputs(self, state: State, x: Array) -> tuple[Array, ...]:
        return (jnp.ones((1,), self.theta.dtype),)

    def from_preactivations(self, state: State, x: Array, pre: tuple[Array, ...]) -> State:
        shifted = jnp.concatenate([state[1:], jnp.zeros((1,), state.dtype)])
        return 0.5 * state + 0.5 * shifted + pre[0] * jnp.asarray(self._signs(), state.dtype)

    def param_units(self):
        # theta drives every unit at once: the cell is not unit-local, so SnAp's and
        # element-wise RTRL's assumptions fail here (exact RTRL, UORO, KF-RTRL, OK apply).
        return jax.tree.map(
            lambda a: np.zeros(a.shape, np.int32), eqx.filter(self, eqx.is_inexact_array)
        )

    def features(self, state: State) -> Float[Array, " 1"]:
        return state[:1]

    @property
    def output_size(self) -> int:
        return 1


class InfluenceParams(NamedTuple):
    """Parameters of ``influence-balancing``."""

    units: int = 23
    positive: int = 10  # units pushed up by theta; the rest are pushed down
    theta: float = 0.5  # the starting value of the parameter
    horizon: int = 500  # steps of the evaluation unroll

    @classmethod
    def checked(cls, **overrides: Any) -> "InfluenceParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        values = cls._field_defaults | overrides
        return cls(
            **check_params("influence-balancing", values, INFLUENCE_BOUNDS, INFLUENCE_RELATIONS)
        )


INFLUENCE_BOUNDS = {
    "units": Bound(int, 1),
    "positive": Bound(int, 0),
    "theta": Bound(float),
    "horizon": Bound(int, 1),
}
INFLUENCE_RELATIONS = (
    Relation(
        ("positive", "units"), lambda positive, units: positive <= units, "positive <= units"
    ),
)


class InfluenceBalancing(Task):
    """UORO's influence balancing (arXiv 1702.05043, section 6).

    The model is fixed: :class:`InfluenceCell` read out by its first unit directly (no
    trainable head). The loss at every step is ``(s_0 - 1)^2 / 2``. Online learners with
    the true (long-term) gradient drive ``θ`` to the value where ``s_0`` settles at 1.
    Truncated BPTT with a short window sees only the short-term effect, pushes ``θ`` the
    wrong way, and diverges. Headline metric: the loss after ``horizon`` steps from
    ``h = 0`` at the current ``θ`` (``evaluate``), and ``θ`` itself.

    Examples:
        >>> import rtrlx
        >>> task, params = rtrlx.tasks.make("influence-balancing")
        >>> cell, head = task.model(params)
        >>> cell.hidden_size, float(cell.theta[0, 0])
        (23, 0.5)
    """

    metric = "unroll_loss"
    higher_is_better = False

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return 1

    def model(self, params: InfluenceParams) -> tuple[InfluenceCell, eqx.nn.Identity]:
        """The fixed model of the task: the cell and an identity readout."""
        cell = InfluenceCell(1, params.units, positive=params.positive, theta=params.theta)
        return cell, eqx.nn.Identity()

    def init(self, params, key):
        del params, key
        return jnp.zeros((), jnp.int32)

    def step(self, params, level, state, key):
        del params, level, key
        return state + 1, jnp.zeros(1), jnp.ones(1)

    def loss(self, out, y):
        return 0.5 * jnp.sum((out - y) ** 2)

    def stats(self, out, y):
        return jnp.stack([self.loss(out, y), jnp.ones_like(self.loss(out, y))])

    def report(self, params, level, totals):
        return {"loss": float(totals[0]) / max(float(totals[1]), 1.0)}

    def evaluate(self, params, cell, head):
        state = jax.lax.fori_loop(
            0, params.horizon, lambda _, s: cell(s, jnp.zeros(1, s.dtype)), cell.init_state()
        )
        return {
            "unroll_loss": float(self.loss(head(cell.features(state)), jnp.ones(1))),
            "theta": float(cell.theta[0, 0]),
        }
