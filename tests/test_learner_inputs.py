"""learner.step checks what sequence_grads checks: no raw JAX error, no silent broadcast."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from conftest import INPUT, OUT, make_problem

import rtrlx

STEP_LEARNERS = ["rtrl", "snap:1", "snap:2", "uoro", "kf_rtrl", "ok:2", "tbptt:3", "es:3"]


def _first_step(spec, batch=2):
    cell, head, xs, ys = make_problem("gru", batch=batch)
    learner = rtrlx.learners.make(spec)
    state = learner.init(cell, key=jax.random.key(0), batch_size=batch)
    return learner, cell, head, state, xs[0], ys[0]


@pytest.mark.parametrize("spec", STEP_LEARNERS)
def test_step_refuses_a_head_of_the_wrong_size(spec):
    learner, cell, _, state, x, y = _first_step(spec)
    head = eqx.nn.Linear(cell.output_size + 1, OUT, key=jax.random.key(0))
    with pytest.raises(rtrlx.ShapeError, match=r"in_features=cell\.output_size"):
        learner.step(cell, head, rtrlx.losses.mse, state, x, y)


@pytest.mark.parametrize("spec", STEP_LEARNERS)
def test_step_refuses_targets_without_their_output_axis(spec):
    learner, cell, head, state, x, y = _first_step(spec)
    with pytest.raises(rtrlx.ShapeError, match="broadcast silently"):
        learner.step(cell, head, rtrlx.losses.mse, state, x, y[:, 0])
    with pytest.raises(rtrlx.ShapeError, match="leading axes"):
        learner.step(cell, head, rtrlx.losses.mse, state, x, y[:1])


@pytest.mark.parametrize("spec", STEP_LEARNERS)
def test_step_refuses_nan_inputs_and_targets(spec):
    learner, cell, head, state, x, y = _first_step(spec)
    with pytest.raises(ValueError, match="x_t holds NaN"):
        learner.step(cell, head, rtrlx.losses.mse, state, x.at[1, 2].set(jnp.nan), y)
    with pytest.raises(ValueError, match="y_t holds NaN"):
        learner.step(cell, head, rtrlx.losses.mse, state, x, y.at[0, 0].set(jnp.inf))


def test_integer_labels_need_no_output_axis():
    cell, _, xs, _ = make_problem("gru", batch=2)
    head = eqx.nn.Linear(cell.output_size, 4, key=jax.random.key(0))
    learner = rtrlx.rtrl()
    state = learner.init(cell, batch_size=2)
    labels = jnp.array([1, 3])
    learner.step(cell, head, rtrlx.losses.cross_entropy, state, xs[0], labels)
    with pytest.raises(rtrlx.ShapeError, match="integer targets are class labels"):
        learner.step(cell, head, rtrlx.losses.cross_entropy, state, xs[0], labels[:, None])


def test_sequence_grads_refuses_targets_without_their_output_axis():
    cell, head, xs, ys = make_problem("elman", batch=2)
    with pytest.raises(rtrlx.ShapeError, match="broadcast silently"):
        rtrlx.sequence_grads(rtrlx.rtrl(), cell, head, rtrlx.losses.mse, xs, ys[..., 0])


@pytest.mark.parametrize("spec", ["uoro", "kf_rtrl", "ok:2"])
def test_a_stochastic_learner_warns_without_a_key(spec):
    cell, head, xs, ys = make_problem("gru", steps=3)
    learner = rtrlx.learners.make(spec)
    assert learner.stochastic
    with pytest.warns(UserWarning, match="no key"):
        learner.init(cell, batch_size=2)
    with pytest.warns(UserWarning, match="no key"):
        rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learner.init(cell, key=jax.random.key(1), batch_size=2)
        rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys, key=jax.random.key(1))


def test_exact_learners_draw_nothing_and_do_not_warn():
    cell, head, xs, ys = make_problem("gru", steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in ["rtrl", "snap:1", "tbptt:2", "bptt"]:
            learner = rtrlx.learners.make(spec)
            assert not learner.stochastic
            rtrlx.sequence_grads(learner, cell, head, rtrlx.losses.mse, xs, ys)
    assert INPUT == cell.input_size
