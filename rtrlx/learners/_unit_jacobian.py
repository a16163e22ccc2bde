"""The unit-diagonal blocks of the state Jacobian without pushing an identity through ``W``.

SnAp-1 needs, at every step, ``blocks[a, b, u] = d h'[a, u] / d h[b, u]``: the diagonal of
the state Jacobian by unit. Forward mode gets it by pushing ``n`` tangents through the
recurrent matmul, ``W @ I``, an ``O(n^3)`` product whose result is the weight itself. For a
cell written as ``h' = g(h, W a + b)`` (``kron_factors()``) where ``g`` is unit-local and
``a`` selects entries of the state, the same blocks follow in ``O(n)`` from the
diagonal of ``dg/dh``, the diagonal of ``dg/dz`` per gate and the weight entries
``W[g·n + u, column of h[b, u] in a]``::

    blocks[a, b, u] = dg[a, u]/dh[b, u] + sum_{f, gate} dg[a, u]/dz_f[gate·n + u]
                                              * W_f[gate·n + u, sel_f[b, u]]

Nothing of this is trusted: :func:`kron_selection` checks it once per cell layout against
the forward-mode diagonal at the declaration probes, and a cell it does not hold for keeps
the forward-mode path.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from ..cells._base import AbstractCell, state_to_units, units_to_state
from ._structure import (
    Probe,
    Unverifiable,
    _finite,
    _mismatch,
    at_every_probe,
    cached,
    kronecker_violation,
)

#: For each Kronecker factor, ``sel[b, u]``: the entry of its input ``a`` that is the state's
#: component ``b`` of unit ``u`` (-1 where none is).
Selection = tuple[np.ndarray, ...]


def kron_unit_blocks(cell: AbstractCell, units: Array, x: Array, sel: Selection) -> Array:
    """``blocks[a, b, u] = d h'[a, u] / d h[b, u]`` for a cell :func:`kron_selection` accepts.

    Args:
        cell: the cell at its current parameters.
        units: the state in the unit view, ``(S, n)``.
        x: the input.
        sel: ``kron_selection(cell)``.

    Returns:
        The blocks, ``(S, S, n)``.
    """
    s, n = units.shape
    like = cell.init_state()
    pre = cell.preactivations(units_to_state(units, like), x)

    def g(u, z):
        return state_to_units(cell.from_preactivations(units_to_state(u, like), x, z))

    _, lin = jax.linearize(g, units, pre)
    ones = jnp.ones((n,), units.dtype)
    zeros_pre = tuple(jnp.zeros_like(z) for z in pre)
    # Unit-local: a tangent of ones in one component (or one gate block) gives, at unit u,
    # exactly the derivative with respect to that unit's own entry. Row k of `d` is one such
    # derivative and row k of `w` what it multiplies: the identity for the state's own
    # components, the weight entries W[gate·n + u, sel[b, u]] for a gate's pre-activation.
    d = [lin(jnp.zeros_like(units).at[b].set(ones), zeros_pre) for b in range(s)]
    w = [jnp.broadcast_to(jnp.eye(s, dtype=units.dtype)[b][:, None], (s, n)) for b in range(s)]
    for k, (factor, z) in enumerate(zip(cell.kron_factors(), pre, strict=True)):
        weight = getattr(cell, factor.weight)
        cols = np.maximum(sel[k], 0)  # (S, n)
        for gate in range(z.shape[0] // n):
            tangent = list(zeros_pre)
            tangent[k] = tangent[k].at[gate * n : (gate + 1) * n].set(ones)
            d.append(lin(jnp.zeros_like(units), tuple(tangent)))
            entries = weight[gate * n + np.arange(n)[None, :], cols]  # (S_b, n)
            w.append(jnp.where(sel[k] >= 0, entries, jnp.zeros((), entries.dtype)))
    # One contraction over the rows (a dot, which XLA keeps as its own kernel: as element-wise
    # code it was fused into every consumer and recomputed for each parameter entry).
    return jnp.einsum("kau,kbu->abu", jnp.stack(d), jnp.stack(w))


def _selection(cell: AbstractCell, p: Probe) -> Selection | str:
    """Where the state sits in each factor's input, read off its Jacobian at the probe."""
    like = cell.init_state()
    s, n = p.units.shape
    sel = []
    for k, pre in enumerate(cell.preactivations(units_to_state(p.units, like), p.x)):
        if pre.ndim != 1 or pre.shape[0] % n:
            return f"preactivations()[{k}] is not gates x hidden long"

        def inputs(u, k=k):
            return cell.kron_inputs(units_to_state(u, like), p.x)[k]

        jac = np.asarray(jax.jacfwd(inputs)(p.units)).reshape(-1, s * n)  # (len(a), S·n)
        if not np.all((jac == 0) | (jac == 1)) or np.any(jac.sum(0) > 1) or np.any(jac.sum(1) > 1):
            return f"kron_inputs()[{k}] is not a selection of the state's entries"
        found = jac.sum(0).reshape(s, n) > 0
        sel.append(np.where(found, jac.argmax(0).reshape(s, n), -1))
    return tuple(sel)


def _check(cell: AbstractCell) -> Selection | str:
    why = kronecker_violation(cell)
    if why:
        return why
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    unravel = ravel_pytree(params)[1]
    found: list[Selection] = []

    def violation(p: Probe) -> str | None:
        at = eqx.combine(unravel(p.theta), static)
        sel = _selection(at, p)
        if isinstance(sel, str):
            return sel
        got = kron_unit_blocks(at, p.units, p.x, sel)
        jac = jax.jacfwd(lambda u: p.f(p.theta, u))(p.units)  # (S, n, S, n)
        want = jnp.diagonal(jac, axis1=1, axis2=3)
        if not _finite(got, want):
            return None
        if np.any(_mismatch(got, want, jnp.abs(want), p.units.dtype)):
            return "its step is not unit-local around the pre-activations"
        found.append(sel)
        return ""

    why = at_every_probe(cell, violation)
    if why:
        return why
    if any(not all(np.array_equal(a, b) for a, b in zip(found[0], f, strict=True)) for f in found):
        return "its state's place in kron_inputs() differs between points"
    return found[0]


def kron_selection(cell: AbstractCell) -> Selection | None:
    """The selection :func:`kron_unit_blocks` needs, or None where its form does not hold.

    Checked once per cell layout at the declaration probes; None means "use forward mode".
    """
    if not cell.kron_factors():
        return None
    try:
        verdict = cached("kron_unit_blocks", cell, _check, lambda why: why)
    except Unverifiable:
        return None
    return None if isinstance(verdict, str) else verdict
