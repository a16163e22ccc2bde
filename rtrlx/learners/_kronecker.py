"""What KF-RTRL and OK share: the Kronecker factors of a cell and their per-step Jacobians.

A cell declares (``kron_factors``) the weight matrices that enter its step as
``z = W @ a + b``. With the bias appended as a column, ``W~ = [W, b]`` and ``a~ = [a; 1]``,
the immediate Jacobian of the new state with respect to ``W~`` is the Kronecker product
``a~ ⊗ D`` with ``D = dh'/dz`` (state entries x rows of ``W``). KF-RTRL and OK keep the
influence of each ``W~`` as a (sum of) Kronecker products ``u ⊗ A``, ``u`` of length
``cols(W~)``, ``A`` of shape ``(S·n, rows(W))``, so ``d h / d W~[i, j] = sum u[j] A[:, i]``.
The learners store each ``A`` transposed, ``(rows(W), S·n)``: propagating all the terms,
``A^T J_h^T``, is then one plain matrix product with no transposes of the large side.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import UnsupportedCellError
from .._types import State
from ..cells._base import (
    AbstractCell,
    KronFactor,
    num_components,
    state_to_units,
    units_to_state,
)
from ._base import (
    Learner,
    batch_init,
    check_cell,
    is_batched,
    map_batch,
    readout_batch,
    split_stream_keys,
    stream_keys_init,
)
from ._structure import require_kronecker


class FactorShape(NamedTuple):
    """Sizes of one Kronecker factor: ``cols`` of ``[W, b]`` and ``rows`` of ``W``."""

    cols: int
    rows: int


def kron_factors(cell: Any, name: str) -> tuple[KronFactor, ...]:
    """The cell's Kronecker factors, after checking that they cover every parameter."""
    check_cell(cell, name)
    factors = cell.kron_factors()
    if not factors:
        raise UnsupportedCellError(
            f"{name}: {type(cell).__name__} declares no weights entering as W @ [h; x] "
            "(cell.kron_factors() is empty), so there is no Kronecker structure to keep. "
            f"{name} runs on Elman (dense), GRU, LSTM and RHN; on this cell use rtrlx.uoro() "
            "(unbiased, any cell), rtrlx.snap(1) or rtrlx.rtrl()."
        )
    trainable = {
        f.name for f in dataclasses.fields(cell) if eqx.is_inexact_array(getattr(cell, f.name))
    }
    covered = {f.weight for f in factors} | {f.bias for f in factors if f.bias is not None}
    if trainable != covered:
        raise UnsupportedCellError(
            f"{name}: {type(cell).__name__}.kron_factors() covers {sorted(covered)} but the "
            f"trainable arrays are {sorted(trainable)}; every parameter must belong to a "
            "factor. Fix kron_factors() or use rtrlx.uoro()/rtrlx.rtrl()."
        )
    require_kronecker(cell, name)
    return factors


def factor_shapes(cell: AbstractCell, factors: tuple[KronFactor, ...]) -> list[FactorShape]:
    """``(cols of [W, b], rows of W)`` for each factor."""
    shapes = []
    for f in factors:
        rows, cols = getattr(cell, f.weight).shape
        shapes.append(FactorShape(cols + (f.bias is not None), rows))
    return shapes


class StepJacobians(NamedTuple):
    """One step's Jacobians for one example."""

    new_units: Float[Array, "S hidden"]
    j_h: Float[Array, "S*hidden S*hidden"]  # d h' / d h, unit view flattened
    inputs: tuple[Array, ...]  # a~ = [a; 1] per factor
    d: tuple[Array, ...]  # D = d h' / d z per factor, (S*hidden, rows)


def step_jacobians(
    cell: AbstractCell, factors: tuple[KronFactor, ...], units: Array, x: Array
) -> StepJacobians:
    """``J_h``, and ``a~`` and ``D`` of every factor, at one step of one example."""
    like = cell.init_state()
    state = units_to_state(units, like)
    size = units.size

    def step_flat(u):
        return state_to_units(cell(units_to_state(u, like), x)).reshape(-1)

    def from_pre(pre):
        return state_to_units(cell.from_preactivations(state, x, pre)).reshape(-1)

    new_flat = step_flat(units)
    j_h = jax.jacfwd(step_flat)(units).reshape(size, size)
    d = jax.jacfwd(from_pre)(cell.preactivations(state, x))
    inputs = []
    for f, a in zip(factors, cell.kron_inputs(state, x), strict=True):
        inputs.append(a if f.bias is None else jnp.concatenate([a, jnp.ones((1,), a.dtype)]))
    return StepJacobians(new_flat.reshape(units.shape), j_h, tuple(inputs), tuple(d))


def factor_grads(
    cell: AbstractCell,
    factors: tuple[KronFactor, ...],
    us: tuple[Array, ...],
    a_mats: tuple[Array, ...],
    delta: Array,
    batched: bool,
) -> Any:
    """``dL/dθ`` from Kronecker terms: ``sum_r outer(A_r^T delta, u_r)`` per factor.

    Args:
        cell: the cell (for the structure of the result).
        factors: its Kronecker factors.
        us: per factor, ``(r, cols)``.
        a_mats: per factor, the transposed ``A`` of each term, ``(r, rows, S·n)``.
        delta: ``dL/dh`` flattened, ``(S·n,)``, or ``(batch, S·n)`` (summed over the batch).
        batched: whether the arrays have a leading batch axis.

    Returns:
        Gradients shaped like ``eqx.filter(cell, eqx.is_inexact_array)``.
    """
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(cell, eqx.is_inexact_array))
    for f, u, a in zip(factors, us, a_mats, strict=True):
        g = jnp.einsum("brms,bs,brk->mk" if batched else "rms,s,rk->mk", a, delta, u)
        cols = getattr(cell, f.weight).shape[1]
        grads = eqx.tree_at(lambda c, f=f: getattr(c, f.weight), grads, g[:, :cols])
        if (bias := f.bias) is not None:
            grads = eqx.tree_at(lambda c, b=bias: getattr(c, b), grads, g[:, cols])
    return grads


class KroneckerState(NamedTuple):
    """State of ``kf_rtrl()`` and ``ok(rank)``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    # Per Kronecker factor: u, (rank, cols of [W, b]); A transposed, (rank, rows of W,
    # S*hidden); a leading batch axis when batched. d h_t / d W~[i, j] ~ sum_r u[r, j] a[r, i, :].
    u: tuple[Float[Array, "..."], ...]
    a: tuple[Float[Array, "..."], ...]
    # One key per stream (a leading batch axis when batched), split at every step, so that a
    # stream's draws do not depend on the other streams of its batch.
    key: PRNGKeyArray


#: ``reduce(key, u (r, cols), a (r, rows, S·n), u_new (cols,), a_new (rows, S·n)) ->
#: (u (r, cols), a (r, rows, S·n))``, with ``a`` holding each ``A`` transposed: an unbiased
#: reduction of the ``r`` propagated Kronecker products plus the new one, ``r + 1`` in all,
#: back to ``r``.
Reduce = Callable[[PRNGKeyArray, Array, Array, Array, Array], tuple[Array, Array]]


def kronecker_learner(name: str, rank: int, reduce: Reduce) -> Learner:
    """A learner keeping each factor's influence as a sum of ``rank`` Kronecker products."""

    def init(cell, *, key=None, batch_size=None):
        factors = kron_factors(cell, name)
        shapes = factor_shapes(cell, factors)
        size = num_components(cell) * cell.hidden_size
        dtype = jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].dtype

        def make():
            u = tuple(jnp.zeros((rank, s.cols), dtype) for s in shapes)
            a = tuple(jnp.zeros((rank, s.rows, size), dtype) for s in shapes)
            return cell.init_state(), u, a

        hidden, u, a = batch_init(cell, batch_size, make)
        return KroneckerState(hidden, u, a, stream_keys_init(key, batch_size, name))

    def step(cell, head, loss_fn, state: KroneckerState, x, y):
        factors = kron_factors(cell, name)
        batched = is_batched(cell, state.hidden, x, name, head=head, y=y)
        key, keys = split_stream_keys(state.key, batched)

        def one(hidden, us, a_mats, key, x):
            jac = step_jacobians(cell, factors, state_to_units(hidden), x)
            keys = jax.random.split(key, len(factors))
            new_u, new_a = [], []
            for k, (u, a) in enumerate(zip(us, a_mats, strict=True)):
                propagated = a @ jac.j_h.T  # (J_h A)^T for every term: one matmul
                u, a = reduce(keys[k], u, propagated, jac.inputs[k], jac.d[k].T)
                new_u.append(u)
                new_a.append(a)
            return units_to_state(jac.new_units, hidden), tuple(new_u), tuple(new_a)

        hidden, us, a_mats = map_batch(one, batched, state.hidden, state.u, state.a, keys, x)
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
        delta = delta.reshape(*delta.shape[:-2], -1)
        g_cell = factor_grads(cell, factors, us, a_mats, delta, batched)
        g_cell = jax.tree.map(jnp.add, g_cell, g_direct)
        return KroneckerState(hidden, us, a_mats, key), loss, (g_cell, g_head)

    return Learner(init=init, step=step, name=name, independent_streams=True, stochastic=True)
