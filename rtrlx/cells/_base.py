"""The contract every recurrent cell follows, and the unit view learners work in.

A cell is an equinox Module: its trainable parameters are its inexact array leaves, its
configuration is static. It states what learners may assume about it:

* ``diagonal``: each unit's next state depends on no other unit's state, so the Jacobian
  of the state update is block-diagonal by unit and element-wise RTRL is exact.
* ``param_units()``: the unit that each parameter entry acts on directly. Every cell in rtrlx
  is *unit-local* (``unit_local``): a parameter changes, within one step, only the state of its
  own unit. SnAp and element-wise RTRL build their sparse influence matrices on this map, and
  exact RTRL its sparse immediate Jacobian.
* ``connectivity()``: which unit reads which other unit through the recurrence.
* ``elementwise_rule()``: optionally, a closed-form element-wise RTRL update (the LRU's
  complex traces) that ``diag_rtrl`` and ``online_deep`` use instead of the generic one.
* ``kron_factors()``: the weight matrices that enter as ``W @ a + b``, with ``a`` built from
  ``[h; x]`` (``kron_inputs``) and the rest of the step a function of the pre-activations
  (``from_preactivations``). KF-RTRL and OK keep one Kronecker factor per such matrix.

Learners see the state in its *unit view*: a real array of shape ``(S, hidden)``, one row
per state component (``S = 2`` for an LSTM's ``(h, c)`` or the real and imaginary parts of an
LRU's complex state).
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._types import State


class KronFactor(NamedTuple):
    """A weight matrix that enters a cell's step as ``weight @ a + bias``.

    Attributes:
        weight: the field name of the ``(m, k)`` matrix.
        bias: the field name of its ``(m,)`` bias, or None.
    """

    weight: str
    bias: str | None = None


class ElementwiseRule(NamedTuple):
    """A cell's own element-wise RTRL update, equal to the generic one but cheaper.

    Attributes:
        init: ``init() -> trace``: the trace of one stream before the first step.
        step: ``step(trace, state, x) -> (new_state, new_trace)``: one step of one stream.
        grads: ``grads(trace, delta) -> cell_grads``: the gradient ``delta · trace`` with
            ``delta = dL/dh`` in the unit view ``(..., S, hidden)``, summed over any leading
            (batch) axes shared by ``trace`` and ``delta``; shaped like
            ``eqx.filter(cell, eqx.is_inexact_array)``.
        chunk: optionally, ``chunk(trace, prev, xs, deltas) -> (trace, cell_grads)``:
            ``C`` steps of a batch at once, when the whole chunk is known. ``trace`` has a
            leading batch axis; ``prev`` holds the states ``h_{t-1}`` before each step,
            leaves ``(C, batch, ...)``; ``xs`` is ``(C, batch, input)`` and ``deltas`` is
            ``(C, batch, S, hidden)``. It returns the trace after the chunk and the sum over
            the chunk and the batch of the gradients ``step`` and ``grads`` would give, so
            that no per-step trace is formed (the LRU's are sums of GEMMs).
    """

    init: Callable[[], Any]
    step: Callable[[Any, Any, Array], tuple[Any, Any]]
    grads: Callable[[Any, Array], Any]
    chunk: Callable[[Any, Any, Array, Array], tuple[Any, Any]] | None = None


class AbstractCell(eqx.Module):
    """A recurrent cell: ``new_state = cell(state, x)``.

    Subclasses define the fields ``input_size`` and ``hidden_size`` and the abstract
    methods. They are final: extend by composition, not by subclassing a concrete cell.
    """

    input_size: eqx.AbstractVar[int]
    hidden_size: eqx.AbstractVar[int]

    #: True when the recurrence is element-wise (block-diagonal by unit), as in LRU, RTU, eLSTM.
    diagonal: ClassVar[bool] = False
    #: True when every parameter entry changes, within one step, only the state of the unit
    #: ``param_units()`` names. A cell whose parameters feed several units at once sets False.
    unit_local: ClassVar[bool] = True

    @abc.abstractmethod
    def init_state(self) -> State:
        """The initial state ``h_0`` (zeros), one array or a tuple of ``(hidden,)`` arrays."""

    @abc.abstractmethod
    def __call__(self, state: State, x: Float[Array, " input"]) -> State:
        """One step of the recurrence."""

    @abc.abstractmethod
    def features(self, state: State) -> Float[Array, " output"]:
        """The real vector a readout (the ``head``) sees, of length ``output_size``."""

    @property
    @abc.abstractmethod
    def output_size(self) -> int:
        """The length of :meth:`features`."""

    def param_units(self) -> PyTree[np.ndarray]:
        """For each trainable array, an integer array of its shape: the unit each entry drives.

        Shaped like ``eqx.filter(self, eqx.is_inexact_array)``. The default reads the first
        axis of every parameter as gate blocks of ``hidden_size`` rows (row ``r`` drives unit
        ``r % hidden_size``), which is the layout of every cell in rtrlx; a cell laid out
        otherwise overrides this. The test suite checks it against the cell's Jacobian.
        """
        n = self.hidden_size
        return jax.tree.map(
            lambda a: unit_index(a.shape, n), eqx.filter(self, eqx.is_inexact_array)
        )

    def kron_factors(self) -> tuple[KronFactor, ...]:
        """The weight matrices entering as ``W @ a + b`` (empty: no Kronecker structure).

        A cell that returns factors also defines :meth:`kron_inputs` and
        :meth:`from_preactivations`, such that ``cell(state, x) ==
        cell.from_preactivations(state, x, cell.preactivations(state, x))``; every trainable
        array must belong to a factor. The test suite checks both.
        """
        return ()

    def kron_inputs(self, state: State, x: Float[Array, " input"]) -> tuple[Array, ...]:
        """The vector ``a`` each of :meth:`kron_factors` multiplies, in the same order."""
        raise NotImplementedError(f"{type(self).__name__} declares no Kronecker factors.")

    def from_preactivations(
        self, state: State, x: Float[Array, " input"], pre: tuple[Array, ...]
    ) -> State:
        """The new state from the pre-activations ``W @ a + b`` of each Kronecker factor."""
        raise NotImplementedError(f"{type(self).__name__} declares no Kronecker factors.")

    def preactivations(self, state: State, x: Float[Array, " input"]) -> tuple[Array, ...]:
        """``W @ a + b`` for each of :meth:`kron_factors`."""
        out = []
        for factor, a in zip(self.kron_factors(), self.kron_inputs(state, x), strict=True):
            z = getattr(self, factor.weight) @ a
            out.append(z if factor.bias is None else z + getattr(self, factor.bias))
        return tuple(out)

    def elementwise_rule(self) -> ElementwiseRule | None:
        """A closed-form element-wise RTRL update for this cell, or None (the generic one).

        The generic update takes Jacobian rows by reverse-mode products. Only diagonal cells
        may have a rule, and it must give the generic update's gradients.
        """
        return None

    def connectivity(self) -> np.ndarray:
        """Boolean ``(hidden, hidden)`` matrix: entry ``[k, u]`` is True when unit k reads unit u.

        The diagonal is always True (a unit reads its own state).
        """
        n = self.hidden_size
        return np.eye(n, dtype=bool) if self.diagonal else np.ones((n, n), dtype=bool)


def unit_index(shape: tuple[int, ...], n: int) -> np.ndarray:
    """Unit index for an array whose first axis stacks gate blocks of ``n`` units each."""
    rows = np.arange(shape[0]) % n
    return np.broadcast_to(rows.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()


def state_to_units(state: State) -> Float[Array, "S hidden"]:
    """The unit view of a state: real rows, complex leaves split into real and imaginary."""
    rows = []
    for leaf in jax.tree.leaves(state):
        if jnp.iscomplexobj(leaf):
            rows.extend([jnp.real(leaf), jnp.imag(leaf)])
        else:
            rows.append(leaf)
    return jnp.stack(rows)


def units_to_state(units: Float[Array, "S hidden"], like: State) -> State:
    """Inverse of :func:`state_to_units`, with the structure and dtypes of ``like``."""
    leaves, treedef = jax.tree.flatten(like)
    out, i = [], 0
    for leaf in leaves:
        if jnp.iscomplexobj(leaf):
            out.append(jax.lax.complex(units[i], units[i + 1]))
            i += 2
        else:
            out.append(units[i])
            i += 1
    return jax.tree.unflatten(treedef, out)


def num_components(cell: AbstractCell) -> int:
    """``S``: the number of real state components per unit."""
    return sum(2 if jnp.iscomplexobj(leaf) else 1 for leaf in jax.tree.leaves(cell.init_state()))


def uniform(key: jax.Array, shape: tuple[int, ...], bound: float) -> Array:
    """Uniform initialisation on ``[-bound, bound]`` in the default float dtype."""
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)
