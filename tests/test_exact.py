"""Every exact learner equals BPTT in float64 at random parameters, T >= 20."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELL_SPECS, DENSE, DIAGONAL, T, flat, make_problem, perturb

import rtrlx
from rtrlx.learners.bptt import unrolled_loss

EXACT_PAIRS = (
    [("rtrl", c) for c in CELL_SPECS]
    + [("diag_rtrl", c) for c in DIAGONAL]
    + [("snap1", c) for c in DIAGONAL]
    + [("snap2", c) for c in CELL_SPECS]  # fully connected or diagonal: SnAp-2 keeps all
    + [("tbptt_full", c) for c in CELL_SPECS]
    + [("ok_full", c) for c in DENSE]  # rank >= columns of every [W, b]: nothing dropped
)
FACTORIES = {
    "rtrl": rtrlx.rtrl,
    "diag_rtrl": rtrlx.diag_rtrl,
    "snap1": lambda: rtrlx.snap(1),
    "snap2": lambda: rtrlx.snap(2),
    "tbptt_full": lambda: rtrlx.tbptt(T),
    "ok_full": lambda: rtrlx.ok(9),  # [W, b] has at most hidden + input + 1 = 9 columns
}


def bptt_grads(cell, head, xs, ys):
    return rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys)


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize(("learner", "cell_name"), EXACT_PAIRS)
def test_exact_learner_equals_bptt(learner, cell_name, batch):
    cell, head, xs, ys = make_problem(cell_name, batch=batch)
    assert xs.dtype == jnp.float64
    loss_ref, g_ref = bptt_grads(cell, head, xs, ys)
    learner = FACTORIES[learner]()
    assert learner.exact_on(cell) or learner.name.startswith("tbptt")
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


@pytest.mark.parametrize("cell_name", DENSE)
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


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("chunk", [1, 5, 7, 64])
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
