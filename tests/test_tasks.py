"""Task streams: the copy task as KF-RTRL and OK define it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx
from rtrlx.tasks import copy_stream


def test_copy_stream_recalls_what_it_showed():
    xs, ys = copy_stream(jax.random.key(3), 400, min_length=2, max_length=6)
    xs, ys = np.asarray(xs), np.asarray(ys)
    t = 0
    episodes = 0
    while True:
        length = 0
        while t + length < 400 and xs[t + length, 2] == 0 and xs[t + length, :2].sum() == 1:
            length += 1
        if t + 2 * length + 1 > 400:
            break
        assert 2 <= length <= 6
        assert xs[t + length, 2] == 1  # the marker
        shown = xs[t : t + length, :2]
        np.testing.assert_array_equal(ys[t + length + 1 : t + 2 * length + 1], shown)
        assert not ys[t : t + length + 1].any()  # nothing to predict before recall
        assert not xs[t + length + 1 : t + 2 * length + 1].any()  # blank during recall
        t += 2 * length + 1
        episodes += 1
    assert episodes > 20


def test_copy_stream_rejects_bad_lengths():
    with pytest.raises(ValueError, match="min_length <= max_length"):
        copy_stream(jax.random.key(0), 10, min_length=3, max_length=2)


def test_soft_cross_entropy_ignores_unscored_steps():
    logits = jnp.array([0.3, -1.0])
    assert float(rtrlx.losses.soft_cross_entropy(logits, jnp.zeros(2))) == 0.0
    np.testing.assert_allclose(
        rtrlx.losses.soft_cross_entropy(logits, jnp.array([0.0, 1.0])),
        rtrlx.losses.cross_entropy(logits, jnp.array(1)),
    )
