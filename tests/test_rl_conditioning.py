"""Trace conditioning and trace patterning: the reference's stimulus rules and trial layout."""

import jax
import jax.numpy as jnp
import numpy as np

import rtrlx
from rtrlx.rl.conditioning import Stimuli, _tick


class ReferenceStimulus:
    """The reference implementation's Stimulus, as published (Rafiee et al. 2022)."""

    def __init__(self, length):
        self.active, self.length, self.onset, self.steps = False, length, None, 0

    def tick(self, t):
        if self.active:
            if self.steps >= self.length:
                self.active = False
                self.steps = 0
            self.steps += 1
        elif self.onset == t:
            self.active = True
            self.steps = 1


def test_stimulus_tick_follows_the_reference():
    rng = np.random.default_rng(0)
    n, length = 16, 3
    refs = [ReferenceStimulus(length) for _ in range(n)]
    ours = Stimuli(jnp.zeros(n, bool), jnp.zeros(n, jnp.int32), jnp.full(n, -1, jnp.int32))
    tick = jax.jit(_tick, static_argnums=2)
    for t in range(300):
        fire = rng.random(n) < 0.2  # new onsets at random, also while a stimulus is on
        for i in np.flatnonzero(fire):
            refs[i].onset = t
        ours = ours._replace(onset=jnp.where(jnp.asarray(fire), t, ours.onset))
        for r in refs:
            r.tick(t)
        ours = tick(ours, jnp.asarray(t), length)
        np.testing.assert_array_equal(ours.active, [r.active for r in refs], err_msg=f"t={t}")
        np.testing.assert_array_equal(ours.steps, [r.steps for r in refs], err_msg=f"t={t}")


def rollout(name, steps, seed=0):
    env, params = rtrlx.rl.make(name)
    obs, state = env.reset(jax.random.key(seed), params)

    def body(state, key):
        obs2, state2, cumulant, _, _ = env.step(key, state, jnp.zeros((), jnp.int32), params)
        return state2, (obs2, cumulant)

    keys = jax.random.split(jax.random.key(seed + 1), steps)
    _, (all_obs, cumulants) = jax.lax.scan(body, state, keys)
    return env, params, np.concatenate([np.asarray(obs)[None], np.asarray(all_obs)]), cumulants


def onsets(signal):
    signal = np.asarray(signal) > 0
    return np.flatnonzero(signal & ~np.concatenate([[False], signal[:-1]]))


def test_trace_conditioning_trials():
    env, _, obs, cumulants = rollout("TraceConditioning", 20_000)
    assert obs.shape[1] == env.observation_size == 12
    np.testing.assert_array_equal(cumulants, obs[1:, 0])  # the cumulant is the US
    cs, us = onsets(obs[:, 1]), onsets(obs[:, 0])
    assert cs[0] == 0 and len(cs) > 100 and len(us) in (len(cs), len(cs) - 1)
    isi = us - cs[: len(us)]
    assert isi.min() >= 14 and isi.max() <= 26 and len(np.unique(isi)) > 8
    trial = np.diff(cs)
    assert (trial >= 14 + 80).all() and (trial <= 26 + 120).all()
    # CS on for 4 steps, US for 2; distractors come and go, the first most often.
    assert (obs[cs[0] : cs[0] + 4, 1] == 1).all() and obs[cs[0] + 4, 1] == 0
    assert (obs[us[0] : us[0] + 2, 0] == 1).all() and obs[us[0] + 2, 0] == 0
    rates = obs[:, 2:].mean(0)
    assert rates[0] > rates[-1] > 0


def test_trace_patterning_us_follows_exactly_the_patterns():
    env, params, obs, _ = rollout("TracePatterning", 30_000)
    patterns = {tuple(p) for p in np.asarray(params.patterns).astype(int)}
    assert len(patterns) == 10 and all(sum(p) == 3 for p in patterns)
    starts = np.flatnonzero(
        obs[:, 1 : 1 + env.cs].any(1) & ~np.concatenate([[False], obs[:-1, 1 : 1 + env.cs].any(1)])
    )
    us = set(onsets(obs[:, 0]))
    seen = {True: 0, False: 0}
    for s in starts[:-1]:
        pattern = tuple(obs[s, 1 : 1 + env.cs].astype(int))
        followed = any(s + d in us for d in range(14, 27))
        assert followed == (pattern in patterns), (s, pattern)
        seen[followed] += 1
    assert seen[True] > 20 and seen[False] > 20  # both kinds of trial occur often


def reference_return_error(cumulants, predictions, gamma):
    returns = np.zeros(len(cumulants))
    returns[-1] = cumulants[-1]
    for t in range(len(cumulants) - 2, -1, -1):
        returns[t] = gamma * returns[t + 1] + cumulants[t]
    return ((predictions - returns) ** 2).mean()


def test_return_error_matches_the_reference():
    rng = np.random.default_rng(1)
    c, p = rng.random(500), rng.random(500)
    got = rtrlx.rl.return_error(jnp.asarray(c), jnp.asarray(p), 0.9)
    np.testing.assert_allclose(float(got), reference_return_error(c, p, 0.9), rtol=1e-10)
