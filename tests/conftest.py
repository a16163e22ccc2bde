import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import rtrlx  # noqa: E402


@pytest.hookimpl(trylast=True)  # after pytest's own tmp_path set-up
def pytest_configure(config):
    """Compiled programs persist on disk for this process's tests.

    Many tests compile the same program (the BPTT reference of a problem, a learner's step on
    a cell), and the module fixture below drops JAX's in-memory caches after every file.
    Measured on 2 cores: the exactness and learner suites ran in 154 s with it against about
    216 s without. The directory is under this process's pytest base temporary directory
    (one per xdist worker, so no two processes write one entry), which pytest prunes itself
    (it keeps the last three runs), so nothing accumulates across runs or after a crash.
    """
    cache = config._tmp_path_factory.getbasetemp() / "jax-compilation-cache"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


INPUT, HIDDEN, OUT, T, BATCH = 3, 5, 2, 20, 3

# Every registered cell (rtrlx.cells.CELLS: a new cell is tested with no edit here), and the
# variants selected by keywords.
CELL_SPECS = {name: (cls, {}) for name, cls in rtrlx.cells.CELLS.items()} | {
    "rtu_nonlinear": (rtrlx.cells.RTU, {"nonlinear": True, "activation": jnp.tanh}),
}
DIAGONAL = [name for name, (cls, _) in CELL_SPECS.items() if cls.diagonal]
DENSE = [name for name, (cls, _) in CELL_SPECS.items() if not cls.diagonal]
# Cells whose parameters each drive one unit (every single-layer cell but the layer-normalised
# LSTM), and the others (composites like FSRNN and Stacked): SnAp, element-wise RTRL, KF-RTRL
# and OK must refuse the others.
UNIT_LOCAL = [name for name, (cls, _) in CELL_SPECS.items() if cls.unit_local]
NOT_UNIT_LOCAL = [name for name in CELL_SPECS if name not in UNIT_LOCAL]


def cover(cases, keep=()):
    """``cases`` (tuples) with those not needed to cover every value of every position marked slow.

    ``make test`` runs a covering subset, in which every value of every position appears at
    least once (every learner and every cell of a grid, say), and the cases in ``keep``;
    CI's slow run runs the rest.
    """
    seen = [set() for _ in cases[0]]
    kept = []
    for case in cases:
        new = case in keep or any(value not in s for value, s in zip(case, seen, strict=True))
        for value, s in zip(case, seen, strict=True):
            s.add(value)
        kept.append(case if new else pytest.param(*case, marks=pytest.mark.slow))
    return kept


def perturb(module, key, scale=0.3):
    """Random parameters: the initial ones plus noise, so no test runs at a special point."""
    leaves, treedef = jax.tree.flatten(module, is_leaf=lambda x: x is None)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
            if eqx.is_inexact_array(leaf)
            else leaf
            for leaf, k in zip(leaves, keys, strict=True)
        ],
    )


def make_problem(name, *, batch=None, steps=T, seed=0, hidden=HIDDEN):
    cls, kwargs = {**CELL_SPECS, **USER_CELL_SPECS}[name]
    k = jax.random.split(jax.random.key(seed), 5)
    cell = perturb(cls(INPUT, hidden, key=k[0], **kwargs), k[1])
    head = perturb(eqx.nn.Linear(cell.output_size, OUT, key=k[2]), k[3])
    lead = (steps,) if batch is None else (steps, batch)
    kx, ky = jax.random.split(k[4])
    xs = jax.random.normal(kx, (*lead, INPUT))
    ys = jax.random.normal(ky, (*lead, OUT))
    return cell, head, xs, ys


def flat(tree):
    return jax.flatten_util.ravel_pytree(tree)[0]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """Rich wraps at the terminal's width, even inside a word (a long path): tests read the
    CLI's messages unwrapped."""
    monkeypatch.setenv("COLUMNS", "500")


@pytest.fixture
def unchecked():
    """Turn jaxtyping's run-time checking off for one test.

    Tests of the errors rtrlx raises for ill-typed input see what a user sees: users do not
    run the checker, which would otherwise refuse the input before rtrlx's own message.
    """
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture
def problem():
    return make_problem


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every compiled XLA:CPU program holds memory mappings, and the whole suite compiles
    thousands. Kept alive in one process they approach the kernel's per-process mapping limit
    (``vm.max_map_count``, 65,530 here), where the compiler crashed with a segmentation fault.
    """
    yield
    import gc

    jax.clear_caches()
    gc.collect()


# Cells a user might write, subclassing AbstractCell and keeping its default declarations.
# Exact learners must be exact on them or refuse them; never silently wrong.
class _UserCell(rtrlx.cells.AbstractCell):
    """What the user cells below share: a zero initial state and the state as features."""

    @abc.abstractmethod
    def __call__(self, h, x): ...

    def init_state(self):
        dtype = jax.tree.leaves(eqx.filter(self, eqx.is_inexact_array))[0].dtype
        return jnp.zeros(self.hidden_size, dtype)

    def features(self, h):
        return h

    @property
    def output_size(self):
        return self.hidden_size


class InputColumnsCell(_UserCell):
    """tanh RNN whose input weight is stored (input, hidden) and used as x @ u."""

    w: jax.Array
    u: jax.Array
    b: jax.Array
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w = jax.random.normal(k1, (hidden_size, hidden_size)) / hidden_size**0.5
        self.u = jax.random.normal(k2, (input_size, hidden_size))
        self.b = jax.random.normal(k3, (hidden_size,))

    def __call__(self, h, x):
        return jnp.tanh(self.w @ h + x @ self.u + self.b)


class DeclaredInputColumnsCell(InputColumnsCell):
    """The same cell with a correct param_units(): u[i, j] drives unit j."""

    def param_units(self):
        n = self.hidden_size
        rows = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
        cols = np.broadcast_to(np.arange(n)[None, :], (self.input_size, n)).copy()
        return _units_like(self, w=rows, u=cols, b=np.arange(n))


def _units_like(cell, **units):
    params = eqx.filter(cell, eqx.is_inexact_array)
    for name, value in units.items():
        params = eqx.tree_at(lambda c, name=name: getattr(c, name), params, value)
    return params


class RecurrentGainCell(_UserCell):
    """h' = tanh(W (g * h) + U x + b): the (n,) gain g moves every unit at once."""

    w: jax.Array
    g: jax.Array
    ux: jax.Array
    b: jax.Array
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w = jax.random.normal(k1, (hidden_size, hidden_size)) / hidden_size**0.5
        self.g = 1.0 + 0.1 * jax.random.normal(k2, (hidden_size,))
        self.ux = jax.random.normal(k3, (hidden_size, input_size))
        self.b = jax.random.normal(k4, (hidden_size,))

    def __call__(self, h, x):
        return jnp.tanh(self.w @ (self.g * h) + self.ux @ x + self.b)


class ScalarGainCell(_UserCell):
    """h' = tanh(a W h + U x + b) with a scalar parameter a."""

    a: jax.Array
    w: jax.Array
    ux: jax.Array
    b: jax.Array
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.a = jnp.asarray(0.9)
        self.w = jax.random.normal(k1, (hidden_size, hidden_size)) / hidden_size**0.5
        self.ux = jax.random.normal(k2, (hidden_size, input_size))
        self.b = jax.random.normal(k3, (hidden_size,))

    def __call__(self, h, x):
        return jnp.tanh(self.a * (self.w @ h) + self.ux @ x + self.b)


class FalselyDiagonalCell(_UserCell):
    """Declares a diagonal recurrence but mixes each unit with its neighbour."""

    diagonal = True
    lam: jax.Array
    ux: jax.Array
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, *, key):
        k1, k2 = jax.random.split(key)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.lam = jax.random.uniform(k1, (hidden_size,), minval=0.5, maxval=0.9)
        self.ux = jax.random.normal(k2, (hidden_size, input_size))

    def __call__(self, h, x):
        return jnp.tanh(self.lam * h + 0.3 * jnp.roll(h, 1) + self.ux @ x)


USER_CELL_SPECS = {
    "user_input_columns": (InputColumnsCell, {}),
    "user_declared_columns": (DeclaredInputColumnsCell, {}),
    "user_recurrent_gain": (RecurrentGainCell, {}),
    "user_scalar_gain": (ScalarGainCell, {}),
    "user_false_diagonal": (FalselyDiagonalCell, {}),
}
