"""What a cell declares about its structure, checked before a learner relies on it.

A cell states what learners may assume (``param_units()``, ``unit_local``, ``diagonal``,
``connectivity()``, ``kron_factors()``), and a learner that builds on a declaration never
trusts it blindly: a wrong one would give a silently wrong gradient. Each declaration is
checked here once per cell layout (type, static configuration, parameter shapes and dtypes),
against the cell's own derivatives at a random point (random parameters, state and input),
and the answer is cached. A structural zero of a Jacobian is zero at every point, and a
coupling that is present is non-zero at a random point with probability one, so the check is
exact up to rounding: each one compares two ways of computing the same product that agree to
rounding exactly when the declaration holds.

The checks cost a handful of Jacobian-vector products of one step, run once, outside any
``jit`` trace (``jax.ensure_compile_time_eval``), so ``step`` stays as fast as before.
"""

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.flatten_util import ravel_pytree

from .._errors import UnsupportedCellError
from ..cells._base import AbstractCell, state_to_units, units_to_state

#: A check's verdict is cached per cell layout; the key holds no arrays.
_CACHE: dict[Any, Any] = {}


class Probe(NamedTuple):
    """One step of a cell in the unit view at a random point, as a function of its inputs."""

    f: Callable[[Any, Any], Any]  # (theta, units) -> new units, at the probe's input
    theta: Any  # random flat parameters, (P,)
    units: Any  # random state in the unit view, (S, n)
    x: Any  # random input, (input,)
    names: list[str]  # the parameter path of every flat entry's leaf
    offsets: np.ndarray  # where each leaf starts in theta


class Unverifiable(Exception):
    """A declaration that cannot be checked here (traced fields, a step that is not finite)."""


def _static_part(value: Any) -> Any:
    if isinstance(value, Tracer):
        raise Unverifiable(
            "its non-float array fields are traced (inside jit or vmap), so its structure "
            "cannot be checked there; mark them eqx.field(static=True), or call the learner's "
            "init outside jit first"
        )
    if isinstance(value, np.ndarray | jax.Array):
        array = np.asarray(value)
        return (array.shape, str(array.dtype), array.tobytes())
    return value


def _layout_key(cell: AbstractCell, what: str) -> Any:
    """What a verdict depends on: the type, every non-float field and the parameters' shapes."""
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    shapes = tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(params))
    fixed = tuple(_static_part(v) for v in jax.tree.leaves(static))
    key = (what, type(cell), jax.tree.structure(cell), shapes, fixed)
    try:
        hash(key)
    except TypeError:  # a field that cannot be hashed: check every time
        return None
    return key


def cached(
    what: str,
    cell: AbstractCell,
    check: Callable[[AbstractCell], Any],
    unverifiable: Callable[[str], Any],
) -> Any:
    """``check(cell)``, computed once per cell layout and ``what``.

    A cell that cannot be checked gets ``unverifiable(why)``: a learner then takes its
    always-exact path or refuses, never trusts the declaration.
    """
    try:
        key = _layout_key(cell, what)
    except Unverifiable as err:
        return unverifiable(str(err))
    if key is not None and key in _CACHE:
        return _CACHE[key]
    try:
        with jax.ensure_compile_time_eval():
            verdict = check(cell)
    except Unverifiable as err:
        verdict = unverifiable(str(err))
    if key is not None:
        _CACHE[key] = verdict
    return verdict


def _random_like(rng: np.random.Generator, a: Any, scale: float) -> Any:
    dtype = np.dtype(a.dtype)
    if np.issubdtype(dtype, np.complexfloating):
        value = rng.normal(0, scale, a.shape) + 1j * rng.normal(0, scale, a.shape)
    else:
        value = rng.normal(0, scale, a.shape)
    return jnp.asarray(value.astype(dtype))


#: The random points the declarations are checked at: (seed, scale of the draws). Two points
#: at two scales, so that a unit that happens to be inactive (a ReLU below zero, a saturated
#: gate) at one point shows its couplings at the other.
PROBES = ((20170524, 0.5), (1705, 0.15))


def probe(cell: AbstractCell, seed: int = PROBES[0][0], scale: float = PROBES[0][1]) -> Probe:
    """The cell at random parameters, state and input (fixed seed: the verdict is stable)."""
    rng = np.random.default_rng(seed)
    params, static = eqx.partition(cell, eqx.is_inexact_array)
    for value in jax.tree.leaves(static):
        _static_part(value)  # refuses traced fields
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [jax.tree_util.keystr(path) for path, _ in path_leaves]
    random = jax.tree.unflatten(treedef, [_random_like(rng, a, scale) for _, a in path_leaves])
    theta, unravel = ravel_pytree(random)
    sizes = [int(np.prod(a.shape)) for _, a in path_leaves]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    like = cell.init_state()
    units0 = state_to_units(like)
    units = _random_like(rng, units0, scale)
    x = _random_like(rng, jax.ShapeDtypeStruct((cell.input_size,), units0.dtype), scale)

    def f(th, u):
        return state_to_units(eqx.combine(unravel(th), static)(units_to_state(u, like), x))

    return Probe(f, theta, units, x, names, offsets)


def at_every_probe(cell: AbstractCell, violation: Callable[[Probe], str | None]) -> str:
    """The first violation found at any probe point ("" when none).

    ``violation(probe)`` returns None when the cell's step is not finite at that point; when
    it is finite at no point, the declaration cannot be checked.
    """
    finite = False
    for seed, scale in PROBES:
        why = violation(probe(cell, seed, scale))
        if why is None:
            continue
        finite = True
        if why:
            return why
    if not finite:
        raise Unverifiable("its step is not finite at random parameters")
    return ""


def _finite(*arrays: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(a)))) for a in arrays)


def _tolerance(dtype: Any) -> float:
    return 256 * float(jnp.finfo(dtype).eps)


def _mismatch(got: Any, want: Any, scale: Any, dtype: Any, segments: Any = None) -> np.ndarray:
    """Entries where two ways of computing the same product differ beyond rounding.

    Rounding is measured against the entry's own terms (``scale``) and, because an entry can
    be a small difference of large intermediate terms (a saturated gate), against the largest
    entry of its segment (one parameter array; the whole vector when ``segments`` is None).
    A declaration that does not hold moves entries by amounts of the size of the Jacobian's
    own entries, far above either.
    """
    got, want, scale = (np.asarray(a) for a in (got, want, scale))
    size = np.maximum(np.abs(got), np.abs(want))
    if segments is None:
        floor = np.full(got.shape, size.max(initial=0.0))
    else:
        floor = np.concatenate(
            [np.full(b - a, size[a:b].max(initial=0.0)) for a, b in itertools.pairwise(segments)]
        ).reshape(got.shape)
    return np.abs(got - want) > _tolerance(dtype) * (scale + size + floor)


def _rows_by_component(pull: Callable, s: int, n: int, dtype: Any) -> Any:
    """Pull back "component a of every unit" for each a: ``S`` vector-Jacobian products."""
    rows = jnp.broadcast_to(jnp.eye(s, dtype=dtype)[:, :, None], (s, s, n))
    return jax.vmap(pull)(rows)


def declared_owner(cell: AbstractCell) -> np.ndarray | None:
    """The flat ``param_units()`` map as declared, or None when it is not declared usably."""
    if not cell.unit_local:
        return None
    try:
        leaves = jax.tree.leaves(cell.param_units())
        owner = np.concatenate([np.asarray(u).reshape(-1) for u in leaves]).astype(np.int64)
    except Exception:  # a default layout that does not fit the cell (a scalar parameter)
        return None
    sizes = sum(a.size for a in jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array)))
    if owner.size != sizes or owner.min(initial=0) < 0 or owner.max(initial=0) >= cell.hidden_size:
        return None
    return owner


def _owner_violations(cell: AbstractCell) -> tuple[np.ndarray | None, str]:
    owner = declared_owner(cell)
    if owner is None:
        return None, (
            "it declares unit_local = False"
            if not cell.unit_local
            else "its param_units() does not give one unit in [0, hidden) for every "
            "parameter entry (the default reads each parameter's first axis as blocks of "
            "hidden_size rows)"
        )

    def violation(p: Probe) -> str | None:
        s, n = p.units.shape
        _, pull = jax.vjp(lambda th: p.f(th, p.units), p.theta)
        (rows,) = _rows_by_component(pull, s, n, p.units.dtype)  # (S, P)
        weights = jnp.asarray(np.random.default_rng(1).normal(size=(s, n)), p.units.dtype)
        (mixed,) = pull(weights)
        if not _finite(rows, mixed):
            return None
        # If entry i moves only unit owner[i], the weighted pullback is the rows weighted there.
        expected = jnp.sum(weights[:, owner] * rows, axis=0)
        scale = jnp.sum(jnp.abs(weights[:, owner] * rows), axis=0)
        bad = np.flatnonzero(_mismatch(mixed, expected, scale, p.units.dtype, p.offsets))
        if bad.size == 0:
            return ""
        i = int(bad[0])
        leaf = int(np.searchsorted(p.offsets, i, side="right") - 1)
        return (
            f"its parameter {p.names[leaf]!r} (flat entry {i - p.offsets[leaf]}) changes, "
            f"within one step, the state of units other than unit {owner[i]} that "
            "param_units() names"
        )

    why = at_every_probe(cell, violation)
    return (None, why) if why else (owner, "")


def _no_owner(why: str) -> tuple[None, str]:
    return None, why


def unit_owner(cell: AbstractCell) -> np.ndarray | None:
    """The unit every flat parameter drives, when the cell's declaration checks out.

    Returns:
        ``(P,)`` unit indices when ``cell.unit_local`` and ``cell.param_units()`` hold at a
        random point; None otherwise (a learner then takes its dense path, or refuses).
    """
    return cached("owner", cell, _owner_violations, _no_owner)[0]


def require_unit_owner(cell: AbstractCell, learner: str) -> np.ndarray:
    """:func:`unit_owner`, or an error saying what the cell must declare."""
    owner, why = cached("owner", cell, _owner_violations, _no_owner)
    if owner is None:
        raise UnsupportedCellError(
            f"{learner}: needs every parameter entry to drive one unit, but "
            f"{type(cell).__name__} cannot be used that way: {why}. If the cell is unit-local, "
            "override param_units() to return, for each trainable array, an integer array of "
            "its shape naming the unit each entry drives (a weight stored (input, hidden) and "
            "used as x @ w drives the unit of its column); if it is not, set "
            "unit_local = False and use rtrlx.rtrl() (exact) or rtrlx.uoro()."
        )
    return owner


def _diagonal_violation(cell: AbstractCell) -> str:
    def violation(p: Probe) -> str | None:
        s, n = p.units.shape
        _, pull = jax.vjp(lambda u: p.f(p.theta, u), p.units)
        (blocks,) = _rows_by_component(pull, s, n, p.units.dtype)  # (S, S, n): [a, b, u]
        weights = jnp.asarray(np.random.default_rng(2).normal(size=(s, n)), p.units.dtype)
        (mixed,) = pull(weights)  # (S, n)
        if not _finite(blocks, mixed):
            return None
        expected = jnp.einsum("au,abu->bu", weights, blocks)
        scale = jnp.einsum("au,abu->bu", jnp.abs(weights), jnp.abs(blocks))
        bad = np.argwhere(_mismatch(mixed, expected, scale, p.units.dtype))
        return (
            f"unit {int(bad[0][1])}'s state moves the next state of other units"
            if (bad.size)
            else ""
        )

    return at_every_probe(cell, violation)


def _unchecked(why: str) -> str:
    return f"it cannot be checked: {why}"


def diagonal(cell: AbstractCell) -> bool:
    """Whether the cell declares ``diagonal`` and its state Jacobian is block-diagonal by unit."""
    return bool(cell.diagonal) and not cached("diagonal", cell, _diagonal_violation, _unchecked)


def require_diagonal(cell: AbstractCell, learner: str) -> None:
    """Refuse a cell whose declared diagonal recurrence does not hold."""
    if not cell.diagonal:
        return
    why = cached("diagonal", cell, _diagonal_violation, _unchecked)
    if why:
        raise UnsupportedCellError(
            f"{learner}: {type(cell).__name__} declares diagonal = True, but {why}. Set "
            "diagonal = False (rtrlx.snap(1) is then an approximation, rtrlx.rtrl() exact)."
        )


def _connectivity_violation(cell: AbstractCell) -> str:
    def violation(p: Probe) -> str | None:
        n = p.units.shape[1]
        jac = np.asarray(jax.jacfwd(lambda u: p.f(p.theta, u))(p.units))  # (S, n, S, n)
        if not _finite(jac):
            return None
        tol = _tolerance(p.units.dtype) * np.abs(jac).max()
        reads = np.any(np.abs(jac) > tol, axis=(0, 2))  # [k, u]: unit k reads unit u
        declared = np.asarray(cell.connectivity(), dtype=bool) | np.eye(n, dtype=bool)
        hidden = np.argwhere(reads & ~declared)
        if hidden.size == 0:
            return ""
        k, u = (int(v) for v in hidden[0])
        return f"unit {k} reads unit {u}, which connectivity()[{k}, {u}] leaves out"

    return at_every_probe(cell, violation)


def require_connectivity(cell: AbstractCell, learner: str) -> np.ndarray:
    """The cell's ``connectivity()``, after checking that it covers every coupling."""
    why = cached("connectivity", cell, _connectivity_violation, _unchecked)
    if why:
        raise UnsupportedCellError(
            f"{learner}: {type(cell).__name__}.connectivity() is incomplete: {why}. Fix "
            "connectivity() (entry [k, u] True when unit k reads unit u) or use rtrlx.rtrl()."
        )
    return np.asarray(cell.connectivity(), dtype=bool)


def _kronecker_violation(cell: AbstractCell) -> str:
    static = eqx.partition(cell, eqx.is_inexact_array)[1]
    unravel = ravel_pytree(eqx.filter(cell, eqx.is_inexact_array))[1]

    def violation(p: Probe) -> str | None:
        state = units_to_state(p.units, cell.init_state())

        def at(th):
            return eqx.combine(unravel(th), static)

        def direct(th):
            return state_to_units(at(th)(state, p.x))

        def through_preactivations(th):
            pre = at(th).preactivations(state, p.x)
            return state_to_units(at(p.theta).from_preactivations(state, p.x, pre))

        def inputs(th):
            return jnp.concatenate([a.reshape(-1) for a in at(th).kron_inputs(state, p.x)])

        out, pull_direct = jax.vjp(direct, p.theta)
        out_pre, pull_pre = jax.vjp(through_preactivations, p.theta)
        a, pull_inputs = jax.vjp(inputs, p.theta)
        weights = jnp.asarray(np.random.default_rng(3).normal(size=out.shape), out.dtype)
        (g_direct,), (g_pre,) = pull_direct(weights), pull_pre(weights)
        (g_inputs,) = pull_inputs(jnp.ones_like(a))
        if not _finite(out, out_pre, g_direct, g_pre, a):
            return None
        if np.any(_mismatch(out_pre, out, jnp.abs(out), out.dtype)):
            return "from_preactivations(state, x, preactivations(state, x)) != cell(state, x)"
        if np.any(np.asarray(g_inputs) != 0):
            return "its kron_inputs() depend on its parameters (a must be built from [h; x])"
        pre, params = at(p.theta).preactivations(state, p.x), at(p.theta)
        for k, (f, a_k) in enumerate(
            zip(cell.kron_factors(), params.kron_inputs(state, p.x), strict=True)
        ):
            z = getattr(params, f.weight) @ a_k
            z = z if f.bias is None else z + getattr(params, f.bias)
            if np.any(_mismatch(pre[k], z, jnp.abs(z), out.dtype)):
                return f"preactivations()[{k}] is not {f.weight} @ kron_inputs()[{k}] + bias"
        if np.any(_mismatch(g_pre, g_direct, jnp.abs(g_direct), out.dtype)):
            return "its parameters also enter the step outside the pre-activations W @ a + b"
        return ""

    return at_every_probe(cell, violation)


def kronecker_violation(cell: AbstractCell) -> str:
    """Why the cell's Kronecker declaration does not hold ("" when it does)."""
    return cached("kronecker", cell, _kronecker_violation, _unchecked)


def require_kronecker(cell: AbstractCell, learner: str) -> None:
    """Refuse a cell whose ``kron_factors()`` / ``from_preactivations`` do not describe it."""
    why = kronecker_violation(cell)
    if why:
        raise UnsupportedCellError(
            f"{learner}: {type(cell).__name__}'s Kronecker declaration does not hold: {why}. "
            "Fix kron_factors(), kron_inputs() and from_preactivations(), or use "
            "rtrlx.uoro() or rtrlx.rtrl()."
        )
