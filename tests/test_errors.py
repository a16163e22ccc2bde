"""Bad input gets an error that names the problem and the fix."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from conftest import make_problem

import rtrlx


def test_xs_that_does_not_fit_the_cell(unchecked):
    cell, head, xs, ys = make_problem("gru")
    with pytest.raises(rtrlx.ShapeError, match=r"cell\.input_size = 3"):
        rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs[:, :2], ys)
    with pytest.raises(rtrlx.ShapeError, match=r"\(T, input\) or \(T, batch, input\)"):
        rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs[0], ys)


def test_ys_that_does_not_fit_xs():
    cell, head, xs, ys = make_problem("gru", batch=2)
    with pytest.raises(rtrlx.ShapeError, match="one target per step"):
        rtrlx.sequence_grads(rtrlx.bptt(), cell, head, rtrlx.losses.mse, xs, ys[:-1])


def test_head_that_does_not_fit_the_cell():
    cell, _, xs, ys = make_problem("lru")
    head = eqx.nn.Linear(cell.hidden_size, 2, key=jax.random.key(0))  # LRU gives 2n features
    with pytest.raises(rtrlx.ShapeError, match=r"in_features=cell\.output_size"):
        rtrlx.sequence_grads(rtrlx.diag_rtrl(), cell, head, rtrlx.losses.mse, xs, ys)


def test_step_with_wrong_batch():
    cell, head, xs, ys = make_problem("gru", batch=2)
    learner = rtrlx.rtrl()
    state = learner.init(cell)  # one stream
    with pytest.raises(rtrlx.ShapeError, match="batch_size=B"):
        learner.step(cell, head, rtrlx.losses.mse, state, xs[0], ys[0])


@pytest.mark.parametrize("cell_name", ["gru", "elman", "lstm", "rhn"])
def test_diag_rtrl_refuses_a_dense_cell(cell_name):
    cell, head, xs, ys = make_problem(cell_name)
    with pytest.raises(rtrlx.UnsupportedCellError, match=r"rtrlx.snap\(1\)"):
        rtrlx.diag_rtrl().init(cell)
    with pytest.raises(rtrlx.UnsupportedCellError, match="dense recurrence"):
        rtrlx.sequence_grads(rtrlx.diag_rtrl(), cell, head, rtrlx.losses.mse, xs, ys)


def test_not_a_cell():
    with pytest.raises(rtrlx.UnsupportedCellError, match="AbstractCell"):
        rtrlx.rtrl().init(eqx.nn.GRUCell(3, 5, key=jax.random.key(0)))


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_tbptt_needs_a_positive_integer(k, unchecked):
    with pytest.raises(ValueError, match="positive integer"):
        rtrlx.tbptt(k)


def test_snap_order():
    with pytest.raises(ValueError, match="1 or 2"):
        rtrlx.snap(3)


def test_bptt_cannot_stream():
    cell, head, xs, ys = make_problem("gru")
    learner = rtrlx.bptt()
    state = learner.init(cell)
    with pytest.raises(rtrlx.NotOnlineError, match="tbptt"):
        learner.step(cell, head, rtrlx.losses.mse, state, xs[0], ys[0])


@pytest.mark.parametrize("spec", ["bptt", "rtrl", "snap:1"])
def test_non_finite_loss(spec):
    cell, head, xs, ys = make_problem("gru")
    xs = xs.at[7, 1].set(jnp.nan)
    learner = rtrlx.learners.make(spec)
    with pytest.raises(Exception, match="loss is not finite"):
        rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
    jitted = eqx.filter_jit(rtrlx.sequence_grads)
    with pytest.raises(Exception, match="loss is not finite"):
        jitted(learner, cell, head, rtrlx.losses.mse, xs, ys)


@pytest.mark.parametrize("spec", ["kf_rtrl", "ok:2"])
@pytest.mark.parametrize("cell_name", ["lru", "rtu"])
def test_kronecker_learners_refuse_cells_without_factors(spec, cell_name):
    cell, head, xs, ys = make_problem(cell_name)
    with pytest.raises(rtrlx.UnsupportedCellError, match=r"W @ \[h; x\].*uoro"):
        rtrlx.sequence_grads(rtrlx.learners.make(spec), cell, head, rtrlx.losses.mse, xs, ys)


def test_kronecker_learners_refuse_a_sparse_elman():
    cell = rtrlx.cells.Elman(3, 5, density=0.5, key=jax.random.key(0))
    with pytest.raises(rtrlx.UnsupportedCellError, match="kron_factors"):
        rtrlx.kf_rtrl().init(cell)


@pytest.mark.parametrize("cell_name", ["gru", "lru"])
def test_rflo_refuses_other_cells(cell_name):
    cell, *_ = make_problem(cell_name)
    with pytest.raises(rtrlx.UnsupportedCellError, match=r"Elman\(\.\.\., alpha=\.\.\.\)"):
        rtrlx.rflo().init(cell)


def test_bad_arguments_of_the_approximations(unchecked):
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        rtrlx.ok(0)
    with pytest.raises(ValueError, match="'random' or 'exact'"):
        rtrlx.rflo(feedback="backprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer argument"):
        rtrlx.learners.make("ok")
