"""POPGym's card-game memory tasks, reimplemented in JAX with POPGym's rules (Easy level).

Each environment deals from a shuffled 52-card deck. ``popgym``'s ``Deck`` deals from the
end of its shuffled index array, so here the deck is kept as the dealing order
``order = idx[::-1]`` and ``order[k]`` is the k-th card dealt. Card ``c`` has suit
``c % 4``, rank ``c // 4`` and colour ``c % 2``, as in ``popgym.core.deck``. The tests run
each environment in lockstep with the ``popgym`` package on the same shuffles and actions.

Reference: Morad, Kortvelesy, Bettini, Liwicki, Prorok. POPGym: Benchmarking Partially
Observable Reinforcement Learning. ICLR 2023. https://arxiv.org/abs/2303.01859
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._base import Environment

DECK = 52


def _suit(card: Array) -> Array:
    return card % 4


def _rank(card: Array) -> Array:
    return card // 4


def _colour(card: Array) -> Array:
    return card % 2


def _one_hot(i: Array, n: int) -> Array:
    return jax.nn.one_hot(i, n, dtype=jnp.zeros(()).dtype)


def _shuffle(key) -> Array:
    return jax.random.permutation(key, DECK).astype(jnp.int32)


def _pm(correct: Array, scale: float) -> Array:
    return jnp.where(correct, scale, -scale).astype(jnp.zeros(()).dtype)


class DeckState(NamedTuple):
    """A deck in dealing order and the number of cards dealt so far."""

    order: Array  # (52,) int32
    dealt: Array  # int32


class _OneDeck(Environment):
    """A task on one deck whose observation shows one feature of the newest card."""

    def show(self, card: Array) -> Array:
        """The observation of ``card`` (one-hot suit by default)."""
        return _one_hot(_suit(card), 4)

    @property
    def observation_size(self) -> int:
        return 4

    @property
    def num_actions(self) -> int:
        return 4

    def reset_from(self, order: ArrayLike) -> tuple[Array, DeckState]:
        """The episode dealt in ``order`` (``popgym``'s ``deck.idx[::-1]``)."""
        order = jnp.asarray(order, jnp.int32)
        return self.show(order[0]), DeckState(order, jnp.ones((), jnp.int32))

    def reset_env(self, key, params):
        return self.reset_from(_shuffle(key))


class RepeatPrevious(_OneDeck):
    """Say the suit of the card dealt ``k`` steps ago (POPGym's RepeatPrevious, Easy: k = 4).

    Observation: the new card's suit (one-hot, 4). Action: a suit. Reward ``±1/(52 - k)``
    once ``k`` cards have been seen, 0 before. 51 steps per episode.
    """

    k: int = 4

    def step_env(self, key, state: DeckState, action, params):
        t = state.dealt
        target = _suit(state.order[jnp.maximum(t - self.k, 0)])
        reward = jnp.where(t >= self.k, _pm(action == target, 1 / (DECK - self.k)), 0.0)
        done = DECK - t == 1
        obs = self.show(state.order[jnp.minimum(t, DECK - 1)])
        return obs, DeckState(state.order, t + 1), reward, done, {}


class RepeatFirst(_OneDeck):
    """Say the suit of the episode's first card (POPGym's RepeatFirst, Easy).

    Observation: the new card's suit (one-hot, 4). Reward ``±1/51``. 51 steps.
    """

    def step_env(self, key, state: DeckState, action, params):
        t = state.dealt
        reward = _pm(action == _suit(state.order[0]), 1 / (DECK - 1))
        done = DECK - t == 1
        obs = self.show(state.order[jnp.minimum(t, DECK - 1)])
        return obs, DeckState(state.order, t + 1), reward, done, {}


class HigherLower(_OneDeck):
    """Guess whether the next card's rank is higher (action 0) or lower (POPGym, Easy).

    Observation: the current card's rank (one-hot, 13). Reward ``±1/52``, 0 on a tie.
    51 steps.
    """

    def show(self, card: Array) -> Array:
        return _one_hot(_rank(card), 13)

    @property
    def observation_size(self) -> int:
        return 13

    @property
    def num_actions(self) -> int:
        return 2

    def step_env(self, key, state: DeckState, action, params):
        t = state.dealt
        done = DECK - t <= 1
        current = _rank(state.order[t - 1])
        new = _rank(state.order[jnp.minimum(t, DECK - 1)])
        reward = jnp.where(new == current, 0.0, _pm((new > current) == (action == 0), 1 / DECK))
        obs = self.show(state.order[jnp.minimum(t, DECK - 1)])
        return obs, DeckState(state.order, t + 1), reward, done, {}


class CountRecallState(NamedTuple):
    """Two decks (values and queries), cards dealt, colour counts, and the open query."""

    values: Array  # (52,) int32, dealing order
    queries: Array  # (52,) int32
    dealt: Array  # int32
    counts: Array  # (2,) int32: how many of each colour has been dealt
    query: Array  # int32: the colour asked about


class CountRecall(Environment):
    """Say how many cards of the queried colour have been dealt (POPGym's CountRecall, Easy).

    Each step deals a value card and a query card. The reward of a step is ``±1/51`` for
    naming the count (0 to 26) of the colour asked on the *previous* step, counted up to that
    step. Observation: value colour and query colour (one-hot, 2 + 2). 51 steps.
    """

    @property
    def observation_size(self) -> int:
        return 4

    @property
    def num_actions(self) -> int:
        return DECK // 2 + 1

    def reset_from(self, values: ArrayLike, queries: ArrayLike) -> tuple[Array, CountRecallState]:
        """The episode dealt in these orders (``popgym``'s ``idx[::-1]`` of both decks)."""
        values, queries = jnp.asarray(values, jnp.int32), jnp.asarray(queries, jnp.int32)
        value, query = _colour(values[0]), _colour(queries[0])
        counts = jnp.zeros(2, jnp.int32).at[value].add(1)
        state = CountRecallState(values, queries, jnp.ones((), jnp.int32), counts, query)
        return jnp.concatenate([_one_hot(value, 2), _one_hot(query, 2)]), state

    def reset_env(self, key, params):
        k1, k2 = jax.random.split(key)
        return self.reset_from(_shuffle(k1), _shuffle(k2))

    def step_env(self, key, state: CountRecallState, action, params):
        t = jnp.minimum(state.dealt, DECK - 1)
        reward = _pm(action == state.counts[state.query], 1 / (DECK - 1))
        value, query = _colour(state.values[t]), _colour(state.queries[t])
        counts = state.counts.at[value].add(1)
        done = state.dealt + 1 == DECK
        obs = jnp.concatenate([_one_hot(value, 2), _one_hot(query, 2)])
        new = CountRecallState(state.values, state.queries, state.dealt + 1, counts, query)
        return obs, new, reward, done, {}


class AutoencodeState(NamedTuple):
    """The deck in dealing order, the cards held, and the phase (1: watch, 0: play)."""

    order: Array  # (52,) int32
    held: Array  # int32: cards dealt and not yet recalled
    watch: Array  # bool


class Autoencode(Environment):
    """Watch the whole deck's suits, then say them back in reverse (POPGym's Autoencode, Easy).

    Observation: ``[watching, one-hot suit]`` (5); while recalling the suit slot shows suit 0,
    as POPGym's does. Watching steps give no reward; each recall is ``±1/52``. The last card
    shown already carries ``watching = 0``. 103 steps.
    """

    @property
    def observation_size(self) -> int:
        return 5

    @property
    def num_actions(self) -> int:
        return 4

    def _obs(self, watch: Array, suit: Array) -> Array:
        return jnp.concatenate([watch.astype(jnp.zeros(()).dtype)[None], _one_hot(suit, 4)])

    def reset_from(self, order: ArrayLike) -> tuple[Array, AutoencodeState]:
        """The episode dealt in ``order`` (``popgym``'s ``deck.idx[::-1]``)."""
        order = jnp.asarray(order, jnp.int32)
        state = AutoencodeState(order, jnp.ones((), jnp.int32), jnp.ones((), bool))
        return self._obs(state.watch, _suit(order[0])), state

    def reset_env(self, key, params):
        return self.reset_from(_shuffle(key))

    def step_env(self, key, state: AutoencodeState, action, params):
        # Watching: deal one more card; the phase turns when the deck is empty.
        held_w = jnp.minimum(state.held + 1, DECK)
        watch_w = held_w < DECK
        obs_w = self._obs(watch_w, _suit(state.order[held_w - 1]))
        # Recalling: the last card held is asked for and put away.
        correct = action == _suit(state.order[jnp.maximum(state.held - 1, 0)])
        reward_p = _pm(correct, 1 / DECK)
        done_p = state.held == 1
        obs_p = self._obs(jnp.zeros((), bool), jnp.zeros((), jnp.int32))
        w = state.watch
        obs = jnp.where(w, obs_w, obs_p)
        new = AutoencodeState(
            state.order, jnp.where(w, held_w, state.held - 1), jnp.where(w, watch_w, False)
        )
        reward = jnp.where(w, 0.0, reward_p)
        return obs, new, reward, jnp.where(w, False, done_p), {}
