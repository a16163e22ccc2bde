"""Every exact learner equals BPTT in float64 at random parameters, T >= 20."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    BATCH,
    CELL_SPECS,
    DENSE,
    DIAGONAL,
    HIDDEN,
    INPUT,
    OUT,
    UNIT_LOCAL,
    USER_CELL_SPECS,
    T,
    cover,
    flat,
    make_problem,
    perturb,
)

import rtrlx
from rtrlx.learners.bptt import unrolled_loss

# Every learner, at settings where some of them claim exactness, against every cell (rtrlx's
# and the ones a user might write). The exactness pairs are derived from the learners' own
# claims (``exact_for``), not listed by hand: a learner that claims a cell is held to it.
LEARNER_SPECS = [
    "rtrl",
    "diag_rtrl",
    "snap:1",
    "snap:2",
    f"tbptt:{T}",
    "tbptt:5",
    "ok:9",  # [W, b] has at most hidden + input + 1 = 9 columns: nothing dropped
    "ok:2",
    "kf_rtrl",
    "uoro",
    "rflo",
]
ALL_CELLS = {**CELL_SPECS, **USER_CELL_SPECS}


@functools.cache
def _cell(cell_name):
    return make_problem(cell_name)[0]


def _claims(spec, cell_name):
    cell = _cell(cell_name)
    try:
        return rtrlx.learners.make(spec).exact_for(cell, T)
    except rtrlx.UnsupportedCellError:
        return False


EXACT_PAIRS = [(s, c) for s in LEARNER_SPECS for c in ALL_CELLS if _claims(s, c)]


def test_the_claims_cover_what_the_learners_promise():
    """A learner that stopped claiming a cell would silently drop out of the suite above."""
    pairs = set(EXACT_PAIRS)
    assert {("rtrl", c) for c in ALL_CELLS} <= pairs  # exact on any cell a user can write
    assert {("diag_rtrl", c) for c in DIAGONAL} <= pairs
    assert {("snap:1", c) for c in DIAGONAL} <= pairs
    assert {("snap:2", c) for c in UNIT_LOCAL} <= pairs
    assert {(f"tbptt:{T}", c) for c in ALL_CELLS} <= pairs
    assert {("ok:9", c) for c in DENSE if _cell(c).kron_factors()} <= pairs
    assert not {p for p in pairs if p[0] in ("ok:2", "kf_rtrl", "uoro", "rflo", "tbptt:5")}


def bptt_grads(cell, head, xs, ys):
    return rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)


# Unbatched, the same pairs again (make test-slow): the batched run covers the same steps.
# make test runs a cover (every learner and every cell once); make test-slow the whole grid.
@pytest.mark.parametrize("batch", [pytest.param(None, marks=pytest.mark.slow), 3])
@pytest.mark.parametrize(("learner", "cell_name"), cover(EXACT_PAIRS))
def test_exact_learner_equals_bptt(learner, cell_name, batch):
    cell, head, xs, ys = make_problem(cell_name, batch=batch)
    assert xs.dtype == jnp.float64
    loss_ref, g_ref = bptt_grads(cell, head, xs, ys)
    learner = rtrlx.learners.make(learner)
    assert learner.exact_for(cell, T)
    loss, g = rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    # Entry-wise, with an absolute floor far below any entry's size.
    ref = flat(g_ref)
    np.testing.assert_allclose(flat(g), ref, rtol=1e-7, atol=1e-10 * float(jnp.abs(ref).max()))
    assert float(jnp.linalg.norm(flat(g) - ref) / jnp.linalg.norm(ref)) < 1e-9


@pytest.mark.parametrize("cell_name", ["elman", "lru", "lstm"])
def test_bptt_matches_finite_differences(cell_name):
    cell, head, xs, ys = make_problem(cell_name, steps=20)
    _, (g_cell, g_head) = bptt_grads(cell, head, xs, ys)
    dyn, static = eqx.partition((cell, head), eqx.is_inexact_array)
    theta, unravel = jax.flatten_util.ravel_pytree(dyn)
    grad = flat((g_cell, g_head))

    def loss(th):
        c, h = eqx.combine(unravel(th), static)
        return unrolled_loss(c, h, rtrlx.losses.mse, xs, ys)

    for i in range(5):
        v = jax.random.normal(jax.random.key(i), theta.shape)
        eps = 1e-5
        fd = (loss(theta + eps * v) - loss(theta - eps * v)) / (2 * eps)
        np.testing.assert_allclose(fd, grad @ v, rtol=1e-7)


@pytest.mark.parametrize("cell_name", [c for c in DENSE if c in UNIT_LOCAL])
def test_snap1_on_dense_cell_is_an_approximation(cell_name):
    cell, head, xs, ys = make_problem(cell_name)
    _, g_ref = bptt_grads(cell, head, xs, ys)
    learner = rtrlx.snap(1)
    assert not learner.exact_on(cell)
    _, g = rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
    rel = float(jnp.linalg.norm(flat(g) - flat(g_ref)) / jnp.linalg.norm(flat(g_ref)))
    cos = float(flat(g) @ flat(g_ref) / jnp.linalg.norm(flat(g)) / jnp.linalg.norm(flat(g_ref)))
    assert rel > 1e-3, "SnAp-1 drops influence entries on a dense cell; it cannot be exact"
    assert cos > 0.5, "yet it should still point roughly along the true gradient"
    # The head sees the same states, so its gradient is exact all the same.
    np.testing.assert_allclose(flat(g[1]), flat(g_ref[1]), rtol=1e-10)


def test_snap2_on_sparse_cell_sits_between_snap1_and_rtrl():
    k = jax.random.split(jax.random.key(3), 4)
    cell = perturb(rtrlx.cells.Elman(3, 12, density=0.2, key=k[0]), k[1])
    head = eqx.nn.Linear(12, 2, key=k[2])
    xs, ys = jax.random.normal(k[3], (T, 3)), jax.random.normal(k[3], (T, 2))
    _, g_ref = bptt_grads(cell, head, xs, ys)
    errs = {}
    for learner in [rtrlx.snap(1), rtrlx.snap(2), rtrlx.rtrl()]:
        _, g = rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
        errs[learner.name] = float(
            jnp.linalg.norm(flat(g) - flat(g_ref)) / jnp.linalg.norm(flat(g_ref))
        )
    assert errs["rtrl"] < 1e-10
    assert 1e-4 < errs["snap:2"] < errs["snap:1"]
    assert not rtrlx.snap(2).exact_on(cell)


@pytest.mark.parametrize("cell_name", ["gru", "lru"])
def test_tbptt_truncates_the_recurrence_only(cell_name):
    cell, head, xs, ys = make_problem(cell_name)
    _, g_ref = bptt_grads(cell, head, xs, ys)
    errors = []
    for k in [1, 2, 5, 10, T]:
        _, g = rtrlx.sequence_grads(rtrlx.tbptt(k), cell, head, rtrlx.losses.mse, xs, ys)
        # Truncation cuts paths through the state; the head's gradient is untouched.
        np.testing.assert_allclose(flat(g[1]), flat(g_ref[1]), rtol=1e-10)
        errors.append(float(jnp.linalg.norm(flat(g[0]) - flat(g_ref[0]))))
    assert errors[0] > 1e-3 * float(jnp.linalg.norm(flat(g_ref[0])))
    assert errors[-1] < 1e-10 * float(jnp.linalg.norm(flat(g_ref[0])))
    assert errors[0] > errors[2]


def test_tbptt_one_equals_instantaneous_gradient():
    """With k = 1 each step's gradient goes through the last transition only."""
    cell, head, xs, ys = make_problem("elman", steps=T)
    _, (g_cell, _) = rtrlx.sequence_grads(rtrlx.tbptt(1), cell, head, rtrlx.losses.mse, xs, ys)
    # Hand-computed: h_t = tanh(W [h_{t-1}; x_t] + b); dL_t/dW = (delta_t * (1 - h_t^2)) v_t^T.
    h = jnp.zeros(cell.hidden_size)
    gw = jnp.zeros_like(cell.weight)
    for t in range(T):
        v = jnp.concatenate([h, xs[t]])
        h = jnp.tanh(cell.weight @ v + cell.bias)
        pred = head(h)
        delta = head.weight.T @ (2 * (pred - ys[t]) / pred.size)
        gw = gw + jnp.outer(delta * (1 - h**2), v)
    np.testing.assert_allclose(g_cell.weight, gw, rtol=1e-10)


# make test: chunk 1 unbatched and a remainder batched; make test-slow: the rest.
@pytest.mark.parametrize(
    ("chunk", "batch"),
    [(1, None), (7, 3)]
    + [
        pytest.param(c, b, marks=pytest.mark.slow)
        for c, b in [(1, 3), (5, None), (5, 3), (7, None), (64, None), (64, 3)]
    ],
)
def test_diag_rtrl_chunked_lru_path_equals_bptt(chunk, batch):
    """Whole chunks, a remainder, chunk 1 and a chunk longer than the sequence (T = 20)."""
    cell, head, xs, ys = make_problem("lru", batch=batch)
    loss_ref, g_ref = bptt_grads(cell, head, xs, ys)
    loss, g = rtrlx.sequence_grads(
        rtrlx.diag_rtrl(chunk=chunk), cell, head, rtrlx.losses.mse, xs, ys
    )
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    ref = flat(g_ref)
    np.testing.assert_allclose(flat(g), ref, rtol=1e-7, atol=1e-10 * float(jnp.abs(ref).max()))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        rtrlx.diag_rtrl(chunk=0)


@pytest.mark.parametrize(
    "cell_name", ["user_input_columns", "user_recurrent_gain", "user_scalar_gain"]
)
@pytest.mark.parametrize("spec", ["snap:1", "snap:2", "diag_rtrl"])
def test_unit_structure_learners_refuse_a_wrong_param_units(spec, cell_name):
    """The default param_units() does not fit these cells: no silent approximation of it."""
    cell, head, xs, ys = make_problem(cell_name)
    match = "dense recurrence" if spec == "diag_rtrl" else "param_units"
    with pytest.raises(rtrlx.UnsupportedCellError, match=match):
        rtrlx.sequence_grads(rtrlx.learners.make(spec), cell, head, rtrlx.losses.mse, xs, ys)


@pytest.mark.parametrize("spec", ["snap:1", "diag_rtrl", "snap:2"])
def test_a_false_diagonal_declaration_is_refused(spec):
    cell, head, xs, ys = make_problem("user_false_diagonal")
    with pytest.raises(rtrlx.UnsupportedCellError, match="declares diagonal = True"):
        rtrlx.sequence_grads(rtrlx.learners.make(spec), cell, head, rtrlx.losses.mse, xs, ys)


def test_rtrl_takes_the_sparse_path_only_on_a_declaration_that_holds():
    from rtrlx.learners._structure import unit_owner

    for name in ["user_input_columns", "user_recurrent_gain", "user_scalar_gain"]:
        assert unit_owner(make_problem(name)[0]) is None
    for name in ["user_declared_columns", *UNIT_LOCAL]:
        assert unit_owner(make_problem(name)[0]) is not None, name
    for name in CELL_SPECS:
        if name not in UNIT_LOCAL:
            assert unit_owner(make_problem(name)[0]) is None, name


def test_a_wrong_kronecker_declaration_is_refused():
    """An Elman cell whose pre-activations miss the input: KF-RTRL/OK would be biased."""

    class Wrong(rtrlx.cells.AbstractCell):
        weight: jax.Array
        bias: jax.Array
        input_size: int = eqx.field(static=True)
        hidden_size: int = eqx.field(static=True)

        def __init__(self, key):
            self.input_size, self.hidden_size = 3, 5
            self.weight = jax.random.normal(key, (5, 8))
            self.bias = jnp.zeros(5)

        def init_state(self):
            return jnp.zeros(5, self.bias.dtype)

        def __call__(self, h, x):
            return jnp.tanh(self.weight @ jnp.concatenate([h, x]) + self.bias) * self.bias[0]

        def features(self, h):
            return h

        @property
        def output_size(self):
            return 5

        def kron_factors(self):
            return (rtrlx.cells.KronFactor("weight", "bias"),)

        def kron_inputs(self, h, x):
            return (jnp.concatenate([h, x]),)

        def from_preactivations(self, h, x, pre):
            return jnp.tanh(pre[0]) * self.bias[0]

    cell = Wrong(jax.random.key(0))
    for spec in ["kf_rtrl", "ok:4"]:
        with pytest.raises(rtrlx.UnsupportedCellError, match="outside the pre-activations"):
            rtrlx.learners.make(spec).init(cell, key=jax.random.key(0))
    assert not rtrlx.ok(9).exact_on(cell)


@pytest.mark.parametrize("cell_name", ["gru", "lstm", "rhn", "elman"])
def test_unit_blocks_from_preactivations_equal_forward_mode(cell_name):
    """SnAp-1's O(n) unit-diagonal blocks of J_h are the forward-mode Jacobian's diagonal."""
    from rtrlx.cells._base import state_to_units, units_to_state
    from rtrlx.learners._unit_jacobian import kron_selection, kron_unit_blocks

    cell, _, xs, _ = make_problem(cell_name)
    sel = kron_selection(cell)
    assert sel is not None
    like = cell.init_state()
    units = jax.random.normal(jax.random.key(5), state_to_units(like).shape)
    jac = jax.jacfwd(lambda u: state_to_units(cell(units_to_state(u, like), xs[0])))(units)
    want = jnp.diagonal(jac, axis1=1, axis2=3)
    np.testing.assert_allclose(kron_unit_blocks(cell, units, xs[0], sel), want, rtol=1e-12)


@pytest.mark.parametrize("cell_name", ["gru", "lstm", "rhn"])
def test_snap1_gradient_is_the_same_by_either_block_path(cell_name, monkeypatch):
    import rtrlx.learners._elementwise as elementwise

    cell, head, xs, ys = make_problem(cell_name, batch=BATCH)
    _, closed = rtrlx.sequence_grads(rtrlx.snap(1), cell, head, rtrlx.losses.mse, xs, ys)
    monkeypatch.setattr(elementwise, "kron_selection", lambda cell: None)
    _, forward = rtrlx.sequence_grads(rtrlx.snap(1), cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(flat(closed), flat(forward), rtol=1e-10, atol=1e-14)


class _MixedGates(rtrlx.cells.RHN):
    """An RHN whose gate also reads its neighbour's state: not unit-local after ``W a``."""

    def from_preactivations(self, state, x, pre):
        n = self.hidden_size
        (z,) = pre
        gate = jax.nn.sigmoid(z[n:] + 0.5 * jnp.roll(state, 1))
        return gate * state + (1 - gate) * (2 * jax.nn.sigmoid(z[:n]) - 1)


def test_a_cell_not_unit_local_around_its_preactivations_keeps_forward_mode():
    from rtrlx.learners._unit_jacobian import kron_selection

    k = jax.random.split(jax.random.key(4), 3)
    cell = perturb(_MixedGates(INPUT, HIDDEN, key=k[0]), k[1])
    assert kron_selection(cell) is None
    head = eqx.nn.Linear(HIDDEN, OUT, key=k[2])
    xs, ys = jax.random.normal(k[2], (T, INPUT)), jax.random.normal(k[1], (T, OUT))
    _, g = rtrlx.sequence_grads(rtrlx.snap(1), cell, head, rtrlx.losses.mse, xs, ys)
    assert np.all(np.isfinite(flat(g)))


class _Shifted(rtrlx.cells.AbstractCell):
    """h' = tanh(lam * h + c * h[perm] + U x): diagonal exactly when ``coupled`` is False.

    ``coupled`` is a plain (non-static) field and ``perm`` an integer array: both are part of
    what a declaration's verdict depends on, and ``perm`` is traced under ``eqx.filter_jit``.
    """

    diagonal = True
    lam: jax.Array
    ux: jax.Array
    perm: jax.Array
    coupled: bool
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, coupled, key):
        self.input_size, self.hidden_size, self.coupled = 3, 5, coupled
        self.lam = jnp.linspace(0.5, 0.9, 5)
        self.ux = jax.random.normal(key, (5, 3))
        self.perm = jnp.roll(jnp.arange(5), 1)

    def init_state(self):
        return jnp.zeros(5, self.lam.dtype)

    def __call__(self, h, x):
        mix = 0.3 * h[self.perm] if self.coupled else 0.0
        return jnp.tanh(self.lam * h + mix + self.ux @ x)

    def features(self, h):
        return h

    @property
    def output_size(self):
        return 5


def test_a_verdict_is_not_reused_for_a_cell_that_differs_in_a_non_float_field():
    key = jax.random.key(0)
    head = eqx.nn.Linear(5, 2, key=key)
    xs, ys = jnp.ones((T, 3)), jnp.zeros((T, 2))
    rtrlx.sequence_grads(rtrlx.diag_rtrl(), _Shifted(False, key), head, rtrlx.losses.mse, xs, ys)
    with pytest.raises(rtrlx.UnsupportedCellError, match="declares diagonal = True"):
        rtrlx.diag_rtrl().init(_Shifted(True, key))


def test_traced_integer_fields_give_the_exact_path_or_a_clear_refusal():
    """Under eqx.filter_jit the cell's integer array is a tracer: nothing can be checked, so
    rtrl takes its dense path (exact) and diag_rtrl refuses, saying why."""
    cell = _Shifted(True, jax.random.key(0))
    head = eqx.nn.Linear(5, 2, key=jax.random.key(1))
    xs, ys = jax.random.normal(jax.random.key(2), (T, 3)), jnp.zeros((T, 2))
    grads = eqx.filter_jit(rtrlx.sequence_grads)
    _, ref = grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)
    _, got = grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys)
    np.testing.assert_allclose(flat(got), flat(ref), rtol=1e-9, atol=1e-12)
    with pytest.raises(rtrlx.UnsupportedCellError, match="traced"):
        grads(rtrlx.diag_rtrl(), cell, head, rtrlx.losses.mse, xs, ys)
