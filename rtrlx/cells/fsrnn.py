"""The Fast-Slow RNN: a chain of fast cells per step around one slow cell."""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import State
from ._base import AbstractCell
from ._compose import (
    block_sizes_ok,
    check_rate,
    dropout,
    join_states,
    not_unit_local,
    split_state,
    zoneout,
)


def make_block(cell: str, input_size: int, hidden_size: int, key: PRNGKeyArray) -> AbstractCell:
    """A sub-cell by its name in ``rtrlx.cells.CELLS`` (composites excluded)."""
    from . import CELLS, COMPOSITES

    if cell not in CELLS or cell in COMPOSITES:
        blocks = [name for name in CELLS if name not in COMPOSITES]
        raise ValueError(f"unknown block cell {cell!r}; valid blocks: {', '.join(blocks)}.")
    cls: Any = CELLS[cell]
    return cls(input_size, hidden_size, key=key)


class FSRNN(AbstractCell):
    """Fast-Slow RNN (Mujika, Meier and Steger 2017): k fast cells and one slow cell.

    Per step, with the carried fast state ``f`` and slow state ``s``::

        f = F1(f, x)                      # F1 reads the last fast state and the input
        s = S(s, F1.features(f))          # the slow cell reads F1's output
        f = F2(f, S.features(s))          # F2 continues the fast state, reading S's output
        f = Fi(f, 0)    for i = 3..k      # the fast chain goes on with no input

    and the output is ``Fk``'s features. Every sub-cell has its own parameters. F3..Fk read
    a constant zero of width 1, as in the official code (not every block type takes an
    empty input); its weights get no gradient, and they count in the parameters as they do
    in the paper's totals.
    With ``zoneout_h``/``zoneout_c`` > 0 every sub-cell's update is zoned out against the
    state it received, in the expectation form ``z·old + (1-z)·new`` here (what the official
    code evaluates with); :meth:`regularised` draws the masks and the dropout of training.

    The state is the fast and slow states side by side (each leaf ``[fast; slow]``), so
    ``hidden_size = fast_size + slow_size`` units: units ``0..fast_size-1`` are fast, the
    rest slow. All sub-cells are one block type (``cell``, any name in
    ``rtrlx.cells.CELLS``; ``"ln-lstm"`` is the paper's layer-normalised LSTM).

    F1's parameters move S and F2 within one step, so the cell is not unit-local: exact
    RTRL, UORO, BPTT and TBPTT train it; SnAp, element-wise RTRL, KF-RTRL and OK refuse it.

    Args:
        input_size: length of ``x``.
        fast_size: units of each fast cell (the paper's PTB model: 700).
        slow_size: units of the slow cell (default ``fast_size``; the paper's PTB: 400).
        k: number of fast cells, >= 2.
        cell: the block type of every sub-cell.
        zoneout_h: zoneout rate of the first state leaf (an LSTM's ``h``).
        zoneout_c: zoneout rate of the other leaves (an LSTM's ``c``).
        key: PRNG key for the sub-cells' initial weights.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.FSRNN(50, 16, slow_size=8, k=2, key=jax.random.key(0))
        >>> cell.hidden_size, cell.output_size
        (24, 16)
        >>> h, c = cell(cell.init_state(), jax.numpy.ones(50))
        >>> h.shape
        (24,)

    References:
        Mujika, Meier, Steger. Fast-Slow Recurrent Neural Networks. NeurIPS 2017.
        https://arxiv.org/abs/1705.08639
    """

    unit_local: ClassVar[bool] = False
    fast: tuple[AbstractCell, ...]
    slow: AbstractCell
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    fast_size: int = eqx.field(static=True)
    slow_size: int = eqx.field(static=True)
    zoneout_h: float = eqx.field(static=True)
    zoneout_c: float = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        fast_size: int,
        *,
        slow_size: int | None = None,
        k: int = 2,
        cell: str = "lstm",
        zoneout_h: float = 0.0,
        zoneout_c: float = 0.0,
        key: PRNGKeyArray,
    ):
        slow_size = fast_size if slow_size is None else slow_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(
                f"FSRNN needs k >= 2 fast cells (F1 reads the input, F2 reads the slow cell), "
                f"got k={k!r}."
            )
        block_sizes_ok("FSRNN", fast_size=fast_size, slow_size=slow_size)
        check_rate("zoneout_h", zoneout_h)
        check_rate("zoneout_c", zoneout_c)
        keys = jax.random.split(key, k + 1)
        first = make_block(cell, input_size, fast_size, keys[0])
        slow = make_block(cell, first.output_size, slow_size, keys[1])
        second = make_block(cell, slow.output_size, fast_size, keys[2])
        rest = tuple(make_block(cell, 1, fast_size, kk) for kk in keys[3:])
        self.fast, self.slow = (first, second, *rest), slow
        self.input_size, self.fast_size, self.slow_size = input_size, fast_size, slow_size
        self.hidden_size = fast_size + slow_size
        self.zoneout_h, self.zoneout_c = zoneout_h, zoneout_c

    def init_state(self) -> State:
        return join_states([self.fast[0].init_state(), self.slow.init_state()])

    def __call__(self, state: State, x: Float[Array, " input"]) -> State:
        return self._step(state, x, None, 0.0)

    def regularised(
        self, state: State, x: Float[Array, " input"], key: PRNGKeyArray, dropout_rate: float
    ) -> State:
        """The training step: zoneout masks drawn, dropout between the fast and slow cells.

        Args:
            state: the carried ``[fast; slow]`` state.
            x: the input.
            key: the step's PRNG key.
            dropout_rate: dropout on the two hand-overs between the fast and the slow cells
                (F1 to S, S to F2), as in the paper and its code.

        Returns:
            The new state.
        """
        return self._step(state, x, key, dropout_rate)

    def _step(self, state: State, x: Array, key: Any, dropout_rate: float) -> State:
        keys: list[Any] = [None] * (2 * len(self.fast) + 4)
        if key is not None:
            keys = list(jax.random.split(key, len(keys)))
        rates = (self.zoneout_h, self.zoneout_c)
        f, s = split_state(state, (self.fast_size, self.slow_size))
        f = zoneout(f, self.fast[0](f, x), rates, keys[0])
        to_slow = dropout(self.fast[0].features(f), dropout_rate, keys[1])
        s = zoneout(s, self.slow(s, to_slow), rates, keys[2])
        to_fast = dropout(self.slow.features(s), dropout_rate, keys[3])
        f = zoneout(f, self.fast[1](f, to_fast), rates, keys[4])
        nothing = jnp.zeros((1,), x.dtype)
        for i, cell in enumerate(self.fast[2:]):
            f = zoneout(f, cell(f, nothing), rates, keys[5 + i])
        return join_states([f, s])

    def features(self, state: State) -> Float[Array, " output"]:
        return self.fast[-1].features(split_state(state, (self.fast_size, self.slow_size))[0])

    @property
    def output_size(self) -> int:
        return self.fast[-1].output_size

    def sub_states(self, state: State) -> dict[str, State]:
        """The carried state by cell: ``{"fast": ..., "slow": ...}`` (for analysis)."""
        f, s = split_state(state, (self.fast_size, self.slow_size))
        return {"fast": f, "slow": s}

    def param_units(self):
        raise not_unit_local("FSRNN", "F1's parameters move the slow cell and F2 in one step")
