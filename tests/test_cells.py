"""Each cell keeps the contract, and what it declares about itself is true."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    CELL_SPECS,
    DIAGONAL,
    INPUT,
    NOT_UNIT_LOCAL,
    UNIT_LOCAL,
    flat,
    make_problem,
    perturb,
)

import rtrlx
from rtrlx.cells import num_components, state_to_units, units_to_state
from rtrlx.learners._base import flat_param_units, flatten_cell, unit_transition
from rtrlx.learners._structure import diagonal as structure_diagonal
from rtrlx.learners._structure import unit_owner


@pytest.mark.parametrize("name", CELL_SPECS)
def test_contract(name):
    cell, _, xs, _ = make_problem(name)
    h = cell.init_state()
    for leaf in jax.tree.leaves(h):
        assert leaf.shape == (cell.hidden_size,)
        assert leaf.real.dtype == jnp.float64  # x64 on: the default float dtype
    h2 = cell(h, xs[0])
    assert jax.tree.structure(h2) == jax.tree.structure(h)
    feats = cell.features(h2)
    assert feats.shape == (cell.output_size,) and feats.dtype == jnp.float64
    for leaf in jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array)):
        assert leaf.dtype == jnp.float64
    units = state_to_units(h2)
    assert units.shape == (num_components(cell), cell.hidden_size)
    back = units_to_state(units, h2)
    assert all(
        jnp.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(h2), strict=True)
    )


@pytest.mark.parametrize("name", UNIT_LOCAL)
def test_declared_structure_matches_the_jacobians(name):
    """param_units, diagonal and connectivity are checked against the true Jacobians."""
    cell, _, xs, _ = make_problem(name)
    h = cell(cell.init_state(), xs[0])
    fc = flatten_cell(cell)
    f = unit_transition(fc, h)
    units = state_to_units(h)
    j_theta = jax.jacrev(f)(fc.theta, units, xs[1])  # (S, n, P)
    j_h = jax.jacfwd(f, argnums=1)(fc.theta, units, xs[1])  # (S, n, S, n)
    owner = flat_param_units(cell)
    n = cell.hidden_size
    touched = jnp.abs(j_theta).sum(axis=0) > 0  # (n, P)
    off_unit = touched & (np.arange(n)[:, None] != owner[None, :])
    assert cell.unit_local  # exact RTRL scatters J_theta on this map
    assert not bool(off_unit.any()), "a parameter drives a unit other than its declared one"
    unit_reads = np.asarray(jnp.abs(j_h).sum(axis=(0, 2)) > 0)  # [k, u]
    assert not np.any(unit_reads & ~cell.connectivity()), "undeclared recurrent connection"
    if cell.diagonal:
        assert not np.any(unit_reads & ~np.eye(n, dtype=bool))
    else:
        assert np.any(unit_reads & ~np.eye(n, dtype=bool))
    # The learners' own check of the declarations (at a random point) agrees.
    assert unit_owner(cell) is not None
    assert structure_diagonal(cell) == cell.diagonal


def test_sparse_elman_mask_is_fixed_and_respected():
    cell = rtrlx.cells.Elman(INPUT, 10, density=0.3, mask_seed=4, key=jax.random.key(0))
    conn = cell.connectivity()
    assert conn.diagonal().all() and 0.2 < conn.mean() < 0.5
    np.testing.assert_array_equal(conn, cell.connectivity())
    with pytest.raises(ValueError, match="density"):
        rtrlx.cells.Elman(INPUT, 4, density=0.0, key=jax.random.key(0))


def test_lru_initialisation_is_on_the_ring():
    cell = rtrlx.cells.LRU(INPUT, 512, r_min=0.5, r_max=0.9, key=jax.random.key(0))
    lam_re, lam_im = cell.eigenvalues()
    modulus = jnp.sqrt(lam_re**2 + lam_im**2)
    assert 0.5 <= float(modulus.min()) and float(modulus.max()) <= 0.9
    np.testing.assert_allclose(jnp.exp(cell.gamma_log), jnp.sqrt(1 - modulus**2), rtol=1e-12)


def test_rtu_linear_and_nonlinear_forms():
    key = jax.random.key(0)
    lin = rtrlx.cells.RTU(INPUT, 4, key=key)
    nonlin = rtrlx.cells.RTU(INPUT, 4, nonlinear=True, key=key)
    x = jnp.ones(INPUT)
    a1, a2 = lin(lin.init_state(), x)
    r = jnp.exp(-jnp.exp(lin.nu_log))
    np.testing.assert_allclose(a1, jnp.sqrt(1 - r**2) * (lin.w1 @ x), rtol=1e-12)
    np.testing.assert_allclose(lin.features((a1, a2)), jax.nn.relu(jnp.concatenate([a1, a2])))
    c1, c2 = nonlin(nonlin.init_state(), x)
    np.testing.assert_allclose(c1, jax.nn.relu(a1))
    np.testing.assert_allclose(nonlin.features((c1, c2)), jnp.concatenate([c1, c2]))


@pytest.mark.slow  # long end-to-end: CI runs it with the slow ones
def test_one_unit_lru_gradient_by_hand():
    """A one-unit LRU, loss sum_t Re(h_t): its gradient in closed form against all learners.

    h_t = gamma b sum_{s<=t} lam^(t-s) x_s with lam = exp(-exp(nu) + i exp(theta)), so
    dh_t/dnu = -exp(nu) sum (t-s) lam^(t-s) gamma b x_s, dh_t/dtheta = i exp(theta) (same sum),
    dh_t/dgamma_log = h_t, dh_t/db_re = gamma sum lam^(t-s) x_s and dh_t/db_im = i of that.
    """
    T = 25
    cell = rtrlx.cells.LRU(1, 1, key=jax.random.key(0))
    cell = eqx.tree_at(
        lambda c: (c.nu_log, c.theta_log, c.gamma_log, c.b_re, c.b_im),
        cell,
        (
            jnp.array([-1.3]),
            jnp.array([-0.7]),
            jnp.array([-0.4]),
            jnp.array([[0.8]]),
            jnp.array([[-0.5]]),
        ),
    )
    head = eqx.nn.Linear(2, 1, key=jax.random.key(1))
    head = eqx.tree_at(lambda m: (m.weight, m.bias), head, (jnp.array([[1.0, 0.0]]), jnp.zeros(1)))
    xs = jax.random.normal(jax.random.key(2), (T, 1))

    nu, th, ga = np.exp(-1.3), np.exp(-0.7), np.exp(-0.4)
    lam, b, x = np.exp(-nu + 1j * th), 0.8 - 0.5j, np.asarray(xs[:, 0])
    g = dict(nu_log=0.0, theta_log=0.0, gamma_log=0.0, b_re=0.0, b_im=0.0)
    for t in range(T):
        s = np.arange(t + 1)
        powers = lam ** (t - s)
        base = np.sum(powers * x[s])
        lagged = np.sum((t - s) * powers * x[s])
        g["nu_log"] += np.real(-nu * lagged * ga * b)
        g["theta_log"] += np.real(1j * th * lagged * ga * b)
        g["gamma_log"] += np.real(ga * b * base)
        g["b_re"] += np.real(ga * base)
        g["b_im"] += np.real(1j * ga * base)

    def linear_loss(pred, y):
        return pred[0]

    for learner in [rtrlx.bptt(), rtrlx.rtrl(), rtrlx.diag_rtrl(), rtrlx.snap(1)]:
        _, (gc, _) = rtrlx.sequence_grads(learner, cell, head, linear_loss, xs, jnp.zeros((T, 1)))
        for name, expected in g.items():
            np.testing.assert_allclose(np.ravel(getattr(gc, name)), [expected], rtol=1e-10)


@pytest.mark.parametrize("name", UNIT_LOCAL)
def test_kronecker_declaration_reproduces_the_step(name):
    """A declared factor really enters as W @ a + b: perturbing W moves z by dW @ a."""
    cell, _, xs, _ = make_problem(name)
    factors = cell.kron_factors()
    if name in DIAGONAL:
        assert factors == ()
        return
    assert factors, f"{name} should declare its weights entering as W @ [h; x]"
    state = cell(cell.init_state(), xs[0])
    pre = cell.preactivations(state, xs[1])
    for got, want in zip(
        jax.tree.leaves(cell.from_preactivations(state, xs[1], pre)),
        jax.tree.leaves(cell(state, xs[1])),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    inputs = cell.kron_inputs(state, xs[1])
    for k, (factor, a) in enumerate(zip(factors, inputs, strict=True)):
        w = getattr(cell, factor.weight)
        dw = jax.random.normal(jax.random.key(k), w.shape)
        moved = eqx.tree_at(lambda c, f=factor: getattr(c, f.weight), cell, w + dw)
        np.testing.assert_allclose(
            moved.preactivations(state, xs[1])[k] - pre[k], dw @ a, rtol=1e-10, atol=1e-12
        )


def test_sparse_elman_has_no_kronecker_structure():
    cell = rtrlx.cells.Elman(3, 6, density=0.5, key=jax.random.key(0))
    assert cell.kron_factors() == ()


def test_elman_leak():
    cell = rtrlx.cells.Elman(2, 3, alpha=0.25, key=jax.random.key(0))
    h, x = jnp.ones(3), jnp.ones(2)
    full = jnp.tanh(cell.weight @ jnp.concatenate([h, x]) + cell.bias)
    np.testing.assert_allclose(cell(h, x), 0.75 * h + 0.25 * full, rtol=1e-13)
    with pytest.raises(ValueError, match="alpha"):
        rtrlx.cells.Elman(2, 3, alpha=0.0, key=jax.random.key(0))


def assert_rule_equals_generic(cell, generic, key, rule_trace):
    """diag_rtrl with the cell's own rule and with the generic update, step by step."""
    head = eqx.nn.Linear(10, 2, key=key)
    xs = jax.random.normal(key, (25, 4, 3))
    ys = jax.random.normal(jax.random.fold_in(key, 1), (25, 4, 2))
    learner = rtrlx.diag_rtrl()
    assert type(learner.init(cell).trace).__name__ == rule_trace
    assert type(learner.init(generic).trace).__name__ == type(generic).__name__
    s1, s2 = learner.init(cell, batch_size=4), learner.init(generic, batch_size=4)
    step = eqx.filter_jit(learner.step)
    for t in range(xs.shape[0]):
        s1, l1, g1 = step(cell, head, rtrlx.losses.mse, s1, xs[t], ys[t])
        s2, l2, g2 = step(generic, head, rtrlx.losses.mse, s2, xs[t], ys[t])
        np.testing.assert_allclose(l1, l2, rtol=1e-12)
        np.testing.assert_allclose(flat(g1), flat(g2), rtol=1e-9, atol=1e-13)


@pytest.mark.slow  # make test stays under 10 minutes on 2 cores
def test_lru_closed_form_rule_equals_the_generic_update():
    """The LRU's complex traces give, step by step, the generic element-wise gradients."""

    class GenericLRU(rtrlx.cells.LRU):
        def elementwise_rule(self):
            return None

    k = jax.random.split(jax.random.key(8), 3)
    cell = perturb(rtrlx.cells.LRU(3, 5, key=k[0]), k[1])
    fields = lambda c: (c.nu_log, c.theta_log, c.gamma_log, c.b_re, c.b_im)  # noqa: E731
    generic = eqx.tree_at(fields, GenericLRU(3, 5, key=k[0]), fields(cell))
    assert_rule_equals_generic(cell, generic, k[2], "LRUTrace")


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param("linear", marks=pytest.mark.slow),  # 12 s
        pytest.param("relu", marks=pytest.mark.slow),  # 12 s
        "tanh",
    ],
)
def test_rtu_closed_form_rule_equals_the_generic_update(variant):
    """The RTU's own traces give, step by step, the generic element-wise gradients."""

    class GenericRTU(rtrlx.cells.RTU):
        def elementwise_rule(self):
            return None

    kwargs = {
        "linear": {},
        "relu": {"nonlinear": True},
        "tanh": {"nonlinear": True, "activation": jnp.tanh},
    }[variant]
    k = jax.random.split(jax.random.key(10), 3)
    cell = perturb(rtrlx.cells.RTU(3, 5, key=k[0], **kwargs), k[1])
    fields = lambda c: (c.nu_log, c.theta_log, c.w1, c.w2)  # noqa: E731
    generic = eqx.tree_at(fields, GenericRTU(3, 5, key=k[0], **kwargs), fields(cell))
    assert_rule_equals_generic(cell, generic, k[2], "RTUTrace")


@pytest.mark.parametrize("hidden", [64, pytest.param(128, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", UNIT_LOCAL)
def test_declaration_checks_hold_in_float32(name, hidden):
    """The learners' checks of a true declaration pass in float32 too: an entry that is a
    small difference of large terms (a saturated gate) differs by rounding between the two
    computations the check compares, which is not a violation."""
    cls, kwargs = CELL_SPECS[name]
    cell = cls(16, hidden, key=jax.random.key(0), **kwargs)

    def single(a):
        if not eqx.is_inexact_array(a):
            return a
        return a.astype(jnp.complex64 if jnp.iscomplexobj(a) else jnp.float32)

    cell = jax.tree.map(single, cell)
    assert unit_owner(cell) is not None
    assert structure_diagonal(cell) == cell.diagonal
    if cell.kron_factors():
        rtrlx.learners.kf_rtrl().init(cell, key=jax.random.key(0))  # refuses a false one


@pytest.mark.parametrize("name", NOT_UNIT_LOCAL)
def test_a_cell_that_is_not_unit_local_is_refused_by_the_sparse_learners(name):
    """Its parameters move several units within one step: it says so, and the learners that
    build on unit-locality refuse it with the learners that do apply."""
    cell, _, xs, _ = make_problem(name)
    h = cell(cell.init_state(), xs[0])
    fc = flatten_cell(cell)
    j_theta = jax.jacrev(unit_transition(fc, h))(fc.theta, state_to_units(h), xs[1])
    units_per_param = np.asarray((jnp.abs(j_theta).sum(axis=0) > 0).sum(axis=0))
    assert units_per_param.max() > 1, "the cell is unit-local after all: declare it"
    assert not cell.unit_local and cell.kron_factors() == ()
    with pytest.raises(rtrlx.UnsupportedCellError, match="not unit-local"):
        cell.param_units()
    for spec in ["snap:1", "snap:2", "diag_rtrl", "kf_rtrl", "ok:2"]:
        with pytest.raises(rtrlx.UnsupportedCellError):
            rtrlx.learners.make(spec).init(cell, key=jax.random.key(0))
    for spec in ["rtrl", "uoro", "tbptt:4"]:
        rtrlx.learners.make(spec).init(cell, key=jax.random.key(0))
