"""A stack of cells of one type, each layer reading the one below in the same step."""

from typing import Any, ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ._base import AbstractCell
from ._compose import block_sizes_ok, dropout, join_states, not_unit_local, split_state
from .fsrnn import make_block


class Stacked(AbstractCell):
    """``layers`` cells of one block type stacked: layer l reads layer l-1's new output.

    The usual multi-layer RNN (``torch.nn.LSTM(num_layers=...)`` without dropout), as one
    cell so that every learner trains it: the state is the layers' states side by side (each
    leaf ``[layer 1; ...; layer L]``, ``hidden_size = layers · hidden``), the features are
    the top layer's. The lower layers' parameters move the upper layers within one step, so
    the stack is not unit-local (exact RTRL, UORO, BPTT and TBPTT train it).

    Args:
        input_size: length of ``x``.
        hidden: units per layer.
        layers: number of layers, >= 1.
        cell: the block type (a name in ``rtrlx.cells.CELLS``).
        key: PRNG key for the layers' initial weights.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.Stacked(50, 16, layers=2, key=jax.random.key(0))
        >>> cell.hidden_size, cell.output_size
        (32, 16)
    """

    unit_local: ClassVar[bool] = False
    cells: tuple[AbstractCell, ...]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden: int,
        *,
        layers: int = 2,
        cell: str = "lstm",
        key: PRNGKeyArray,
    ):
        block_sizes_ok("Stacked", hidden=hidden, layers=layers)
        keys = jax.random.split(key, layers)
        first = make_block(cell, input_size, hidden, keys[0])
        rest = [make_block(cell, first.output_size, hidden, k) for k in keys[1:]]
        self.cells = (first, *rest)
        self.input_size, self.hidden = input_size, hidden
        self.hidden_size = hidden * layers

    def init_state(self) -> State:
        return join_states([c.init_state() for c in self.cells])

    def __call__(self, state: State, x: Float[Array, " input"]) -> State:
        return self._step(state, x, None, 0.0)

    def regularised(
        self, state: State, x: Float[Array, " input"], key: PRNGKeyArray, dropout_rate: float
    ) -> State:
        """The training step: dropout on the outputs passed from one layer to the next.

        Args:
            state: the carried state.
            x: the input.
            key: the step's PRNG key.
            dropout_rate: the dropout rate between layers (Zaremba et al. 2014).

        Returns:
            The new state.
        """
        return self._step(state, x, key, dropout_rate)

    def _step(self, state: State, x: Array, key: Any, dropout_rate: float) -> State:
        parts = split_state(state, [self.hidden] * len(self.cells))
        keys: list[Any] = [None] * len(self.cells)
        if key is not None:
            keys = list(jax.random.split(key, len(self.cells)))
        new, inp = [], x
        for cell, part, k in zip(self.cells, parts, keys, strict=True):
            part = cell(part, inp)
            new.append(part)
            inp = dropout(cell.features(part), dropout_rate, k)
        return join_states(new)

    def features(self, state: State) -> Float[Array, " output"]:
        top = split_state(state, [self.hidden] * len(self.cells))[-1]
        return self.cells[-1].features(top)

    @property
    def output_size(self) -> int:
        return self.cells[-1].output_size

    def sub_states(self, state: State) -> dict[str, State]:
        """The carried state by layer: ``{"layer 1": ..., ...}`` (for analysis)."""
        parts = split_state(state, [self.hidden] * len(self.cells))
        return {f"layer {i + 1}": p for i, p in enumerate(parts)}

    def param_units(self):
        raise not_unit_local("Stacked", "a lower layer's parameters move the layers above it")
