"""Restarting one stream of a batch (an episode boundary): the gradient is cut there."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import BATCH, T, flat, make_problem

import rtrlx
from rtrlx.learners import restart_streams

RESTART_AT = 7  # stream 0 begins a new sequence before this step (not a window boundary)


def _scan_with_restart(learner, cell, head, xs, ys, done_at):
    """Sum of the step gradients over ``xs`` with the streams in ``done_at`` restarted."""
    state = learner.init(cell, key=jax.random.key(1), batch_size=xs.shape[1])
    step = eqx.filter_jit(learner.step)
    total = None
    for t in range(xs.shape[0]):
        if t == RESTART_AT:
            state = restart_streams(learner, cell, state, done_at)
        state, _, grads = step(cell, head, rtrlx.losses.mse, state, xs[t], ys[t])
        total = grads if total is None else jax.tree.map(jnp.add, total, grads)
    return flat(total)


@pytest.mark.parametrize(
    "learner",
    [
        pytest.param(rtrlx.rtrl(), marks=pytest.mark.slow),  # 10 s
        pytest.param(rtrlx.tbptt(T), marks=pytest.mark.slow),  # 4 s
        pytest.param(rtrlx.tbptt(5), marks=pytest.mark.slow),  # 14 s on a fresh clone
    ],
)
def test_restart_equals_two_separate_sequences(learner):
    """With stream 0 restarted at step 7, an exact learner's gradient is BPTT's on steps
    0..6 plus BPTT's on 7..T-1 from the initial state (stream 0) and BPTT's on the whole
    sequence (the other streams), each divided by the batch; tbptt(5) restarts inside its
    second window, and its windows are cut there too."""
    cell, head, xs, ys = make_problem("gru", batch=BATCH)
    done = jnp.arange(BATCH) == 0
    got = _scan_with_restart(learner, cell, head, xs, ys, done)
    k = learner.truncation or T
    expected = sum(
        _reference(cell, head, xs[:, b], ys[:, b], k, restart=b == 0) for b in range(BATCH)
    )
    np.testing.assert_allclose(got, expected / BATCH, rtol=1e-8, atol=1e-12)


def _reference(cell, head, xs, ys, k, *, restart):
    """The gradient of one stream: BPTT within each window of k, the state carried across
    windows without gradient, and (``restart``) reset to the initial state at RESTART_AT."""
    loss_fn = rtrlx.losses.mse
    cp, cs = eqx.partition(cell, eqx.is_inexact_array)
    hp, hs = eqx.partition(head, eqx.is_inexact_array)
    cuts = set(range(0, xs.shape[0], k)) | ({RESTART_AT} if restart else set())
    cuts = sorted(cuts | {xs.shape[0]})

    def segment_loss(cp, hp, h, x, y):
        c, hd = eqx.combine(cp, cs), eqx.combine(hp, hs)

        def body(h, xy):
            h = c(h, xy[0])
            return h, loss_fn(hd(c.features(h)), xy[1])

        h, losses = jax.lax.scan(body, h, (x, y))
        return jnp.sum(losses), h

    h = cell.init_state()
    total = 0
    for a, b in itertools.pairwise(cuts):
        if restart and a == RESTART_AT:
            h = cell.init_state()
        grads, h = jax.grad(segment_loss, argnums=(0, 1), has_aux=True)(
            cp, hp, h, xs[a:b], ys[a:b]
        )
        total = total + flat(grads)
    return total


@pytest.mark.parametrize(
    "name",
    [
        "uoro",
        pytest.param("kf_rtrl", marks=pytest.mark.slow),
        pytest.param("snap:1", marks=pytest.mark.slow),
    ],
)
def test_restarted_stream_state_is_fresh(name):
    """An approximate learner's restarted stream holds init's hidden state and traces; the
    other streams and every PRNG key are untouched."""
    learner = rtrlx.learners.make(name)
    cell, head, xs, ys = make_problem("gru", batch=BATCH)
    state = learner.init(cell, key=jax.random.key(1), batch_size=BATCH)
    for t in range(3):
        state, _, _ = learner.step(cell, head, rtrlx.losses.mse, state, xs[t], ys[t])
    done = jnp.arange(BATCH) == 1
    after = restart_streams(learner, cell, state, done)
    fresh = learner.init(cell, key=jax.random.key(1), batch_size=BATCH)
    for new, old, init in zip(
        jax.tree.leaves(rtrlx._tree.keys_to_data(after)),
        jax.tree.leaves(rtrlx._tree.keys_to_data(state)),
        jax.tree.leaves(rtrlx._tree.keys_to_data(fresh)),
        strict=True,
    ):
        if new.ndim and new.shape[0] == BATCH and not jnp.issubdtype(new.dtype, jnp.uint32):
            np.testing.assert_array_equal(new[1], init[1])
            np.testing.assert_array_equal(new[0], old[0])
            np.testing.assert_array_equal(new[2], old[2])
        else:
            np.testing.assert_array_equal(new, old)


def test_learner_that_cannot_restart_one_stream_says_so():
    learner = rtrlx.rflo()
    cell, _, _, _ = make_problem("elman", batch=BATCH)
    state = learner.init(cell, key=jax.random.key(1), batch_size=BATCH)
    with pytest.raises(rtrlx.UnsupportedCellError, match="cannot restart one stream"):
        restart_streams(learner, cell, state, jnp.arange(BATCH) == 0)
