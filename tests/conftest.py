import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import rtrlx  # noqa: E402

INPUT, HIDDEN, OUT, T, BATCH = 3, 5, 2, 20, 3

# Every cell, by name, with the keywords that select a variant.
CELL_SPECS = {
    "elman": (rtrlx.cells.Elman, {}),
    "gru": (rtrlx.cells.GRU, {}),
    "lstm": (rtrlx.cells.LSTM, {}),
    "rhn": (rtrlx.cells.RHN, {}),
    "lru": (rtrlx.cells.LRU, {}),
    "rtu": (rtrlx.cells.RTU, {}),
    "rtu_nonlinear": (rtrlx.cells.RTU, {"nonlinear": True, "activation": jnp.tanh}),
    "elstm": (rtrlx.cells.ELSTM, {}),
}
DIAGONAL = ["lru", "rtu", "rtu_nonlinear", "elstm"]
DENSE = ["elman", "gru", "lstm", "rhn"]


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
    cls, kwargs = CELL_SPECS[name]
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
