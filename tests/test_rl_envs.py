"""rtrlx.rl's POPGym tasks against the popgym package, in lockstep on the same shuffles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rtrlx

popgym = pytest.importorskip("popgym.envs")

# rtrlx name -> (popgym class, how many actions, rtrlx observation from popgym's)
CASES = {
    "RepeatPreviousEasy": ("RepeatPreviousEasy", lambda o: np.eye(4)[o]),
    "RepeatFirstEasy": ("RepeatFirstEasy", lambda o: np.eye(4)[o]),
    "HigherLowerEasy": ("HigherLowerEasy", lambda o: np.eye(13)[o]),
    "CountRecallEasy": (
        "CountRecallEasy",
        lambda o: np.concatenate([np.eye(2)[o[0]], np.eye(2)[o[1]]]),
    ),
    "AutoencodeEasy": ("AutoencodeEasy", lambda o: np.concatenate([[o[0]], np.eye(4)[o[1]]])),
}


def start(name, ref):
    """Our episode with the cards popgym drew after its reset."""
    env, _ = rtrlx.rl.make(name)
    if name == "CountRecallEasy":
        return env, env.reset_from(ref.value_deck.idx[::-1], ref.query_deck.idx[::-1])
    return env, env.reset_from(ref.deck.idx[::-1])


@pytest.mark.parametrize("policy", ["random", "oracle-ish"])
@pytest.mark.parametrize("name", list(CASES))
def test_same_observations_rewards_and_ends_as_popgym(name, policy):
    ref_cls, encode = CASES[name]
    ref = getattr(popgym, ref_cls)()
    rng = np.random.default_rng(0)
    step = jax.jit(lambda env, s, a: env.step_env(jax.random.key(0), s, a, None), static_argnums=0)
    for episode in range(3):
        obs_ref, _ = ref.reset(seed=episode)
        env, (obs, state) = start(name, ref)
        np.testing.assert_allclose(obs, encode(obs_ref))
        total = 0.0
        for t in range(200):
            if policy == "random":
                action = int(rng.integers(env.num_actions))
            else:  # a mix of right and wrong answers, so both reward signs occur
                action = int(rng.integers(env.num_actions)) if t % 3 else 0
            obs_ref, r_ref, term, trunc, _ = ref.step(action)
            obs, state, r, done, _ = step(env, state, jnp.asarray(action))
            np.testing.assert_allclose(obs, encode(obs_ref), err_msg=f"{name} step {t}")
            np.testing.assert_allclose(float(r), r_ref, rtol=1e-6, atol=1e-9)
            assert bool(done) == (term or trunc), f"{name} step {t}"
            total += r_ref
            if term or trunc:
                break
        assert term, f"{name}: the episode did not end in 200 steps"
        assert t + 1 == {"AutoencodeEasy": 103}.get(name, 51)


def test_step_resets_and_jits_under_vmap():
    env, params = rtrlx.rl.make("RepeatFirstEasy")
    keys = jax.random.split(jax.random.key(1), 8)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    assert obs.shape == (8, 4)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    dones = []
    for t in range(60):
        actions = jnp.zeros(8, jnp.int32)
        _, state, _, done, _ = step(jax.random.split(jax.random.key(t), 8), state, actions, params)
        dones.append(np.asarray(done))
    dones = np.stack(dones)
    assert dones[50].all() and not dones[:50].any()  # 51 steps, then a fresh episode
    assert int(state.dealt[0]) == 10  # the new episode has run 9 steps since its reset


def test_make_lists_the_environments():
    with pytest.raises(ValueError, match="valid environments: RepeatPreviousEasy"):
        rtrlx.rl.make("CartPole")
