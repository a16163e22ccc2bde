"""gymnax wrappers: the same dynamics, with exactly the velocity entries hidden."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx


@pytest.mark.parametrize(
    ("name", "gymnax_id", "kept"),
    [
        ("CartPolePositionOnly", "CartPole-v1", [0, 2]),  # x, theta; not x_dot, theta_dot
        ("PendulumPositionOnly", "Pendulum-v1", [0, 1]),  # cos, sin; not theta_dot
        ("MemoryChain", "MemoryChain-bsuite", None),
    ],
)
def test_wrapper_hides_exactly_the_velocities(name, gymnax_id, kept):
    env, params = rtrlx.rl.make(name)
    raw, raw_params = gymnax.make(gymnax_id)
    key = jax.random.key(3)
    obs, state = env.reset(key, params)
    with jax.numpy_dtype_promotion("standard"):  # gymnax's own code needs it
        raw_obs, raw_state = raw.reset(key, raw_params)
    full = np.ravel(np.asarray(raw_obs))
    np.testing.assert_allclose(obs, full if kept is None else full[kept], rtol=1e-6)
    rng = np.random.default_rng(0)
    step, raw_step = jax.jit(env.step), jax.jit(raw.step)
    ends = 0
    for t in range(300):
        a = int(rng.integers(env.num_actions))
        raw_a = env.torques[a] if env.torques is not None else a
        k = jax.random.fold_in(key, t)
        obs, state, r, done, info = step(k, state, jnp.asarray(a), params)
        with jax.numpy_dtype_promotion("standard"):
            raw_obs, raw_state, raw_r, term, trunc, _ = raw_step(k, raw_state, raw_a, raw_params)
        full = np.ravel(np.asarray(raw_obs))
        np.testing.assert_allclose(obs, full if kept is None else full[kept], rtol=1e-6)
        np.testing.assert_allclose(r, raw_r, rtol=1e-6)
        assert bool(done) == bool(term or trunc)
        assert bool(info["terminated"]) == bool(term)
        ends += bool(done)
    assert env.observation_size == obs.shape[0]
    if name == "CartPolePositionOnly":
        assert ends > 5  # random actions topple the pole often
