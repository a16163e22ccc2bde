"""A deep stack of diagonal recurrent blocks, as in the LRU papers, usable as one cell.

The stack's forward pass is written once, in :meth:`DeepRecurrent.forward`, from three
public pieces: :meth:`~DeepRecurrent.encode`, :meth:`~DeepRecurrent.block_input` (the
normalisation) and :meth:`~DeepRecurrent.block_output` (GLU and residual). ``__call__`` is
``forward`` with the cells' own steps; a learner (``online_deep``) is ``forward`` with its
own step of each cell, one step of one stream, a batch, or a whole chunk at once.

Where trace rules live. A rule that follows from one cell's own equations (the LRU's
complex element-wise trace and its chunked GEMM form, the RTU's trace) lives on the cell,
as ``elementwise_rule()``: it is a fact about the cell, like ``param_units()``, it equals
the generic element-wise update (so it is an optimisation, never a different gradient),
and every element-wise learner (``diag_rtrl``, ``snap(1)``, ``online_deep``) can use it.
What is kept and what is dropped across cells (each block's traces, the encoder's dense
trace, the influence of a block on the blocks above it through time, the spatial error)
is the approximation, so it lives in the learner. The model holds no traces and no rules,
and never knows which learner runs: it exposes only its forward pieces.
"""

from collections.abc import Callable
from functools import partial
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


def _same(fn: Callable) -> Callable:
    """The identity on functions: ``forward``'s ``over`` for one step of one stream."""
    return fn


class DeepRecurrent(AbstractCell):
    """``L`` blocks of ``norm -> diagonal recurrent cell -> GLU -> residual``, with an encoder.

    The input goes through a linear encoder to ``d_model`` features. Block ``l`` normalises
    its input ``u`` (no learned parameters), steps its recurrent cell (an :class:`LRU` or
    :class:`RTU` of ``hidden_size = d_model`` units) on it, reads the cell's features through
    a gated linear unit (the LRU's ``C, D``, not recurrent) and adds ``u`` back. The decoder
    is the learner's head, which reads :meth:`features`: the top block's output.

    The forward pass is :meth:`forward`, built from :meth:`encode`, :meth:`block_input`
    and :meth:`block_output`; a learner that steps the cells its own way (with their
    traces, or over a whole chunk) passes its step to :meth:`forward`.

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
        def advance(i: int, z: Array) -> tuple[State, None]:
            return self.cells[i](state[i], z), None

        new, top, _ = self.forward(x, advance)
        return (*new, top)

    def encode(self, x: Float[Array, " input"]) -> Float[Array, " hidden"]:
        """The encoder: the input to the first block, ``u_0``."""
        return self.encoder(x)

    def block_input(self, i: int, u: Float[Array, " hidden"]) -> Float[Array, " hidden"]:
        """What block ``i``'s recurrent cell reads from the block's input ``u``: ``norm(u)``.

        The normalisation has no parameters, so this is the same for every ``i``.
        """
        del i
        mean = jnp.mean(u)
        var = jnp.mean((u - mean) ** 2)
        return (u - mean) / jnp.sqrt(var + 1e-5)

    def block_output(
        self, i: int, h: State, u: Float[Array, " hidden"]
    ) -> Float[Array, " hidden"]:
        """Block ``i``'s output from its cell's new state ``h`` and its input ``u``.

        The cell's features go through the block's gated linear unit and ``u`` is added
        back: ``u + a * sigmoid(b)`` with ``(a, b) = glu(features(h))``.
        """
        a, b = jnp.split(self.glus[i](self.cells[i].features(h)), 2, axis=-1)
        return u + a * jax.nn.sigmoid(b)

    def forward(
        self,
        x: Array,
        advance: Callable[[int, Array], tuple[State, Any]],
        *,
        over: Callable[[Callable], Callable] | None = None,
    ) -> tuple[tuple[State, ...], Array, tuple[Any, ...]]:
        """The stack's forward pass with each block's recurrent step supplied by the caller.

        ``encode``, then per block ``z = block_input(i, u)``, ``h = advance(i, z)``,
        ``u = block_output(i, h, u)``. ``__call__`` is this with the cells' own steps; a
        learner passes its own ``advance`` to step the cells its way (with their traces or
        Jacobians, or a whole chunk of steps at once), and reads them back from ``aux``.

        Args:
            x: the input; with ``over``, any leading axes ``over`` maps over.
            advance: ``advance(i, z) -> (h, aux)``: block ``i``'s new cell state from its
                cell's input ``z``, and anything the caller wants back.
            over: maps the per-vector pieces (encoder, normalisation, GLU) over the leading
                axes of ``x`` (e.g. ``jax.vmap``); None for one step of one stream.

        Returns:
            ``(states, top, aux)``: each block's new cell state (as ``advance`` returned it),
            the top block's output ``u_L`` and each block's ``aux``.
        """
        lift = over if over is not None else _same
        u = lift(self.encode)(x)
        states, auxes = [], []
        for i in range(len(self.cells)):
            h, aux = advance(i, lift(partial(self.block_input, i))(u))
            u = lift(partial(self.block_output, i))(h, u)
            states.append(h)
            auxes.append(aux)
        return tuple(states), u, tuple(auxes)

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
