"""Animal-learning prediction tasks: trace conditioning and trace patterning, in JAX.

The benchmarks of Rafiee et al. (2022), on which the RTU paper evaluates online prediction:
a conditioned stimulus (CS) comes on, and after an inter-stimulus interval (ISI) without any
cue the unconditioned stimulus (US) follows; trials are separated by a random inter-trial
interval (ITI). The agent predicts the discounted sum of future US (the cumulant is the US
signal, the reward of :meth:`Environment.step`); actions are ignored. Distractor stimuli
come and go at random. The metric is the mean squared return error (:func:`return_error`).

Each stimulus follows the reference's rules: it turns on at its onset step, stays on for its
activation length, and a stimulus that is on ignores new onsets.

References:
    Rafiee, Abbas, Ghiassian, Kumaraswamy, Sutton, Ludvig, White. From eye-blinks to state
    construction: diagnostic benchmarks for online representation learning. Adaptive
    Behavior, 2022. https://arxiv.org/abs/2011.04590

    Elelimy, White, Bowling, White. Real-time recurrent learning using trace units in
    reinforcement learning. NeurIPS 2024. https://arxiv.org/abs/2409.01449
"""

import itertools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._base import Environment

NEVER = -1  # an onset that no step reaches


class Stimuli(NamedTuple):
    """A group of stimuli (leading axis: which stimulus)."""

    active: Array  # bool
    steps: Array  # int32: steps on so far
    onset: Array  # int32: the step at which each turns on next (NEVER: none)


def _stimuli(n: int) -> Stimuli:
    return Stimuli(jnp.zeros(n, bool), jnp.zeros(n, jnp.int32), jnp.full(n, NEVER, jnp.int32))


def _tick(s: Stimuli, t: Array, length: int) -> Stimuli:
    """One step of the reference's ``Stimulus.tick``, for every stimulus of a group."""
    ending = s.active & (s.steps >= length)
    on_steps = jnp.where(ending, 0, s.steps) + 1  # the reference counts on even as it ends
    starting = ~s.active & (s.onset == t)
    return Stimuli(
        jnp.where(s.active, ~ending, starting),
        jnp.where(s.active, on_steps, jnp.where(starting, 1, s.steps)),
        s.onset,
    )


def _obs(*groups: Stimuli) -> Array:
    dtype = jnp.zeros(()).dtype
    return jnp.concatenate([g.active.astype(dtype) for g in groups])


class ConditioningParams(NamedTuple):
    """Parameters of trace conditioning and trace patterning."""

    isi: tuple[int, int] = (14, 26)  # inclusive range of the CS-to-US interval
    iti: tuple[int, int] = (80, 120)  # inclusive range of the interval between trials
    gamma: float = 0.95  # discount of the predicted return (1 - 1/mean ISI)
    cs_length: int = 4
    us_length: int = 2
    distractor_length: int = 4


class ConditioningState(NamedTuple):
    """Time, the next trial's start, and the stimuli."""

    time: Array
    trial_start: Array
    us: Stimuli
    cs: Stimuli
    distractors: Stimuli


class TraceConditioning(Environment):
    """Trace conditioning: CS, a silent gap, then the US; with distractors.

    Observation ``[US, CS, distractor_1..k]``. Distractor ``d`` (``d = 0..k-1``) turns on
    with probability ``1 / (10 (d + 1))`` at any step it is off. The cumulant is the US.
    """

    distractors: int = eqx.field(static=True, default=10)

    @property
    def observation_size(self) -> int:
        return 2 + self.distractors

    @property
    def num_actions(self) -> int:
        return 1

    def default_params(self) -> ConditioningParams:
        return ConditioningParams()

    def _trial(self, state: ConditioningState, key, params) -> ConditioningState:
        k_isi, k_iti = jax.random.split(key)
        isi = jax.random.randint(k_isi, (), params.isi[0], params.isi[1] + 1, jnp.int32)
        iti = jax.random.randint(k_iti, (), params.iti[0], params.iti[1] + 1, jnp.int32)
        t = state.time
        return state._replace(
            cs=state.cs._replace(onset=jnp.full(1, t, jnp.int32)),
            us=state.us._replace(onset=jnp.full(1, t + isi, jnp.int32)),
            trial_start=t + isi + iti,
        )

    def _advance(self, state: ConditioningState, key, params, new_trial) -> tuple:
        k_trial, k_dis = jax.random.split(key)
        state = jax.tree.map(
            lambda a, b: jnp.where(new_trial, a, b), self._trial(state, k_trial, params), state
        )
        probs = 1.0 / (10.0 * jnp.arange(1, self.distractors + 1, dtype=jnp.zeros(()).dtype))
        fire = ~state.distractors.active & (jax.random.uniform(k_dis, (self.distractors,)) < probs)
        d = state.distractors
        state = state._replace(distractors=d._replace(onset=jnp.where(fire, state.time, d.onset)))
        t = state.time
        state = state._replace(
            us=_tick(state.us, t, params.us_length),
            cs=_tick(state.cs, t, params.cs_length),
            distractors=_tick(state.distractors, t, params.distractor_length),
        )
        obs = _obs(state.us, state.cs, state.distractors)
        return obs, state

    def reset_env(self, key, params):
        zero = jnp.zeros((), jnp.int32)
        state = ConditioningState(zero, zero, _stimuli(1), _stimuli(1), _stimuli(self.distractors))
        return self._advance(state, key, params, jnp.ones((), bool))

    def step_env(self, key, state, action, params):
        state = state._replace(time=state.time + 1)
        obs, state = self._advance(state, key, params, state.time == state.trial_start)
        cumulant = obs[0]
        return obs, state, cumulant, jnp.zeros((), bool), {"gamma": params.gamma}


def activation_patterns(seed: int, cs: int, patterns: int) -> np.ndarray:
    """The CS patterns that predict the US: ``patterns`` distinct half-on patterns."""
    on = list(itertools.combinations(range(cs), cs // 2))
    chosen = np.random.RandomState(seed).choice(len(on), size=patterns, replace=False)
    out = np.zeros((patterns, cs), np.float32)
    for i, c in enumerate(chosen):
        out[i, list(on[c])] = 1.0
    return out


class PatterningParams(NamedTuple):
    """Parameters of trace patterning (the stimuli's as in :class:`ConditioningParams`)."""

    patterns: np.ndarray  # (num_patterns, cs): the CS patterns followed by the US
    isi: tuple[int, int] = (14, 26)
    iti: tuple[int, int] = (80, 120)
    gamma: float = 0.95
    pattern_prob: float = 0.5  # probability that a trial's CS pattern is a US-predicting one
    noise: float = 0.0  # probability that the US does the opposite of what the pattern says
    cs_length: int = 4
    us_length: int = 2
    distractor_length: int = 4


class TracePatterning(Environment):
    """Trace patterning: only some combinations of ``cs`` cues predict the US.

    Each trial turns on a random subset of the ``cs`` CSs. The US follows (after the ISI)
    exactly when that subset is one of the task's activation patterns (half of the CSs on;
    ``num_patterns`` of them, drawn from ``seed``), so no single cue predicts it: the
    prediction needs the conjunction, remembered through the gap. Distractors turn on at
    random with each trial. Observation ``[US, CS_1..cs, distractor_1..k]``.
    """

    cs: int = eqx.field(static=True, default=6)
    num_patterns: int = eqx.field(static=True, default=10)
    distractors: int = eqx.field(static=True, default=5)
    seed: int = eqx.field(static=True, default=0)

    @property
    def observation_size(self) -> int:
        return 1 + self.cs + self.distractors

    @property
    def num_actions(self) -> int:
        return 1

    def default_params(self) -> PatterningParams:
        return PatterningParams(activation_patterns(self.seed, self.cs, self.num_patterns))

    def _trial(self, state: ConditioningState, key, params) -> ConditioningState:
        k_which, k_pick, k_rand, k_noise, k_isi, k_iti, k_dis = jax.random.split(key, 7)
        patterns = jnp.asarray(params.patterns)
        n_pat = patterns.shape[0]
        p = (2**self.cs * params.pattern_prob - n_pat) / (2**self.cs - n_pat)
        chosen = patterns[jax.random.randint(k_pick, (), 0, n_pat)]
        uniform = jax.random.bernoulli(k_rand, 0.5, (self.cs,)).astype(patterns.dtype)
        pattern = jnp.where(jax.random.uniform(k_which) < p, chosen, uniform)
        matches = jnp.any(jnp.all(patterns == pattern[None], axis=1))
        flip = jax.random.uniform(k_noise) < params.noise
        us_on = matches != flip
        isi = jax.random.randint(k_isi, (), params.isi[0], params.isi[1] + 1, jnp.int32)
        iti = jax.random.randint(k_iti, (), params.iti[0], params.iti[1] + 1, jnp.int32)
        t = state.time
        cs_on = pattern > 0
        dis_on = jax.random.bernoulli(k_dis, 0.5, (self.distractors,))
        return state._replace(
            cs=state.cs._replace(onset=jnp.where(cs_on, t, state.cs.onset)),
            us=state.us._replace(onset=jnp.where(us_on, t + isi, state.us.onset)),
            distractors=state.distractors._replace(
                onset=jnp.where(dis_on, t, state.distractors.onset)
            ),
            trial_start=t + isi + iti,
        )

    def _advance(self, state, key, params, new_trial):
        state = jax.tree.map(
            lambda a, b: jnp.where(new_trial, a, b), self._trial(state, key, params), state
        )
        t = state.time
        state = state._replace(
            us=_tick(state.us, t, params.us_length),
            cs=_tick(state.cs, t, params.cs_length),
            distractors=_tick(state.distractors, t, params.distractor_length),
        )
        return _obs(state.us, state.cs, state.distractors), state

    def reset_env(self, key, params):
        zero = jnp.zeros((), jnp.int32)
        state = ConditioningState(
            zero, zero, _stimuli(1), _stimuli(self.cs), _stimuli(self.distractors)
        )
        return self._advance(state, key, params, jnp.ones((), bool))

    def step_env(self, key, state, action, params):
        state = state._replace(time=state.time + 1)
        obs, state = self._advance(state, key, params, state.time == state.trial_start)
        return obs, state, obs[0], jnp.zeros((), bool), {"gamma": params.gamma}


def return_error(cumulants: Array, predictions: Array, gamma: float) -> Array:
    """Mean squared return error: predictions against the discounted future cumulants.

    ``G_t = c_t + gamma G_{t+1}`` backwards from the last step (the reference's rule, with
    the same truncation at the end of the record).

    Args:
        cumulants: ``(T,)`` cumulants ``c_t``.
        predictions: ``(T,)`` predictions of ``G_t``.
        gamma: discount.

    Returns:
        The mean of ``(predictions - G)^2``.
    """

    def back(g, c):
        g = c + gamma * g
        return g, g

    _, returns = jax.lax.scan(back, jnp.zeros((), cumulants.dtype), cumulants, reverse=True)
    return jnp.mean((predictions - returns) ** 2)
