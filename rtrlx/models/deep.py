"""A deep stack of diagonal recurrent blocks, as in the LRU papers, usable as one cell."""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import AbstractCell
from ..cells.lru import LRU
from ..cells.rtu import RTU


def _norm(u: Array) -> Array:
    """Layer normalisation without learned scale or shift."""
    mean = jnp.mean(u)
    var = jnp.mean((u - mean) ** 2)
    return (u - mean) / jnp.sqrt(var + 1e-5)


class DeepRecurrent(AbstractCell):
    """``L`` blocks of ``norm -> diagonal recurrent cell -> GLU -> residual``, with an encoder.

    The input goes through a linear encoder to ``d_model`` features. Block ``l`` normalises
    its input ``u`` (no learned parameters), steps its recurrent cell (an :class:`LRU` or
    :class:`RTU` of ``hidden_size = d_model`` units) on it, reads the cell's features through
    a gated linear unit (the LRU's ``C, D``, not recurrent) and adds ``u`` back. The decoder
    is the learner's head, which reads :meth:`features`: the top block's output.

    The stack is itself a cell, so every learner that accepts any cell runs on it
    (``bptt``, ``tbptt``, ``rtrl``, ``uoro``). Its state is the tuple of the blocks' states
    followed by the top output ``u_L`` of the last step, which the next step does not read:
    it is kept so that :meth:`features` is a function of the state. The recurrence is not
    diagonal across blocks (block ``l + 1`` reads block ``l`` in the same step), and the
    encoder drives every unit, so SnAp and ``diag_rtrl`` refuse it.

    Args:
        input_size: length of ``x``.
        hidden_size: ``d_model``, also the units of each recurrent cell.
        layers: number of blocks ``L``.
        cell: ``"lru"`` or ``"rtu"``.
        key: PRNG key.
        **cell_kwargs: passed to each recurrent cell (e.g. ``r_min``, ``nonlinear``).

    Examples:
        >>> import jax, rtrlx
        >>> model = rtrlx.models.DeepRecurrent(3, 8, layers=2, key=jax.random.key(0))
        >>> state = model(model.init_state(), jax.numpy.ones(3))
        >>> model.features(state).shape
        (8,)

    References:
        Orvieto et al. Resurrecting Recurrent Neural Networks for Long Sequences. ICML 2023.
        https://arxiv.org/abs/2303.06349

        Zucchet, Meier, Schug, Mujika, Sacramento. Online learning of long-range
        dependencies. NeurIPS 2023. https://arxiv.org/abs/2305.15947
    """

    encoder: eqx.nn.Linear
    cells: tuple[AbstractCell, ...]
    unit_local: ClassVar[bool] = False  # the encoder drives every unit
    glus: tuple[eqx.nn.Linear, ...]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        layers: int = 1,
        cell: str = "lru",
        key: PRNGKeyArray,
        **cell_kwargs: Any,
    ):
        if layers < 1:
            raise ValueError(f"DeepRecurrent: layers must be >= 1, got {layers}.")
        if cell not in ("lru", "rtu"):
            raise ValueError(f"DeepRecurrent: cell must be 'lru' or 'rtu', got {cell!r}.")
        self.input_size, self.hidden_size = input_size, hidden_size
        keys = jax.random.split(key, 2 * layers + 1)
        self.encoder = eqx.nn.Linear(input_size, hidden_size, key=keys[0])
        cls: Any = LRU if cell == "lru" else RTU
        self.cells = tuple(
            cls(hidden_size, hidden_size, key=keys[1 + i], **cell_kwargs) for i in range(layers)
        )
        self.glus = tuple(
            eqx.nn.Linear(c.output_size, 2 * hidden_size, key=keys[1 + layers + i])
            for i, c in enumerate(self.cells)
        )

    def init_state(self) -> State:
        top = jnp.zeros(self.hidden_size, self.encoder.weight.dtype)
        return (*(c.init_state() for c in self.cells), top)

    def __call__(self, state: State, x: Float[Array, " input"]) -> State:
        u = self.encoder(x)
        new = []
        for cell, glu, h in zip(self.cells, self.glus, state[:-1], strict=True):
            h = cell(h, _norm(u))
            a, b = jnp.split(glu(cell.features(h)), 2)
            u = u + a * jax.nn.sigmoid(b)
            new.append(h)
        return (*new, u)

    def features(self, state: State) -> Float[Array, " hidden"]:
        return state[-1]

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def param_units(self):
        raise UnsupportedCellError(
            "DeepRecurrent is not unit-local (its encoder and each block's readout feed every "
            "unit), so SnAp and element-wise RTRL do not apply to the stack as a whole. Use "
            "rtrlx.rtrl(), rtrlx.uoro() or rtrlx.bptt() on it."
        )
