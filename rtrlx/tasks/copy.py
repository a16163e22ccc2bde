"""Copy tasks: the binary copy curriculum of KF-RTRL and OK, and the fixed-length copy task."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import Bound, Relation, Task, check_params, scored_mean

#: Input channels of the binary copy task: bit 0, bit 1, the recall marker.
INPUT_SIZE = 3
#: Output classes of the binary copy task: the two bits.
OUTPUT_SIZE = 2
LOG2 = 0.6931471805599453


def copy_stream(
    key: PRNGKeyArray, steps: int, *, min_length: int = 1, max_length: int = 10
) -> tuple[Float[Array, "T 3"], Float[Array, "T 2"]]:
    """``steps`` time steps of back-to-back binary copy episodes, all at once.

    An episode of length ``L`` (uniform in ``[min_length, max_length]``) shows ``L`` random
    bits (one-hot on channels 0 and 1), then the recall marker (channel 2), then ``L``
    blank steps during which the target is the string, bit by bit. Targets are one-hot
    during recall and zero elsewhere, for :func:`rtrlx.losses.soft_cross_entropy`. The
    stream ends where ``steps`` does, possibly mid-episode.

    Args:
        key: PRNG key.
        steps: the number of time steps ``T``.
        min_length: shortest string.
        max_length: longest string.

    Returns:
        ``(xs (T, 3), ys (T, 2))`` in the default float dtype.

    Examples:
        >>> import jax
        >>> xs, ys = copy_stream(jax.random.key(0), 50, max_length=4)
        >>> xs.shape, ys.shape
        ((50, 3), (50, 2))
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"copy_stream: need 1 <= min_length <= max_length, got {min_length}, {max_length}."
        )
    k_len, k_bits = jax.random.split(key)
    episodes = steps // (2 * min_length + 1) + 1
    lengths = jax.random.randint(k_len, (episodes,), min_length, max_length + 1)
    bits = jax.random.bernoulli(k_bits, 0.5, (episodes, max_length)).astype(jnp.int32)
    ends = jnp.cumsum(2 * lengths + 1)
    t = jnp.arange(steps)
    episode = jnp.searchsorted(ends, t, side="right")
    start = ends[episode] - (2 * lengths[episode] + 1)
    pos = t - start
    length = lengths[episode]
    shown = jnp.take_along_axis(bits[episode], jnp.clip(pos, 0, max_length - 1)[:, None], 1)[:, 0]
    recalled_pos = jnp.clip(pos - length - 1, 0, max_length - 1)
    recalled = jnp.take_along_axis(bits[episode], recalled_pos[:, None], 1)[:, 0]
    eye = jnp.eye(INPUT_SIZE)
    xs = jnp.where(
        (pos < length)[:, None],
        eye[shown],
        jnp.where((pos == length)[:, None], eye[2], jnp.zeros(INPUT_SIZE)),
    )
    ys = jnp.where((pos > length)[:, None], jnp.eye(OUTPUT_SIZE)[recalled], 0.0)
    return xs, ys


class CopyCurriculumParams(NamedTuple):
    """Parameters of ``copy-curriculum``."""

    start: int = 1  # the curriculum's first length T_
    max_length: int = 256  # the longest string the stream can hold
    threshold: float = 0.15  # bits per recalled character below which T_ grows by one
    spread: int = 4  # each string has length max(1, T_ - U{0..spread})
    smoothing: float = 0.01  # weight of a step in the running loss

    @classmethod
    def checked(cls, **overrides: Any) -> "CopyCurriculumParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        values = cls._field_defaults | overrides
        return cls(
            **check_params("copy-curriculum", values, CURRICULUM_BOUNDS, CURRICULUM_RELATIONS)
        )


CURRICULUM_BOUNDS = {
    "start": Bound(int, 1),
    "max_length": Bound(int, 1),
    "threshold": Bound(float, 0, low_open=True),
    "spread": Bound(int, 0),
    "smoothing": Bound(float, 0, 1, low_open=True),
}
CURRICULUM_RELATIONS = (
    Relation(
        ("start", "max_length"), lambda start, longest: start <= longest, "start <= max_length"
    ),
)


class CopyState(NamedTuple):
    """One stream of ``copy-curriculum``."""

    bits: Array  # (max_length,) int32, the current string
    length: Array  # int32, its length
    pos: Array  # int32, steps into the episode (episode length 2 L + 1)


class CopyCurriculum(Task):
    """The copy curriculum of KF-RTRL and OK (arXiv 1805.10842, 1902.03993).

    A binary string of length ``L``, a recall marker, then the string back. The streams
    run episode after episode without resets (the marker tells the network where it is).
    Each new string has length ``max(1, T_ - U{0..4})``. The curriculum level ``T_``
    grows by one when the running loss on recall steps falls below 0.15 bits per character.
    That loss is an exponential average with weight ``smoothing`` per step, and it restarts
    at 1 bit (chance) after each increase. Headline metric: ``T_`` reached.

    Examples:
        >>> import jax, rtrlx
        >>> task, params = rtrlx.tasks.make("copy-curriculum")
        >>> state = task.init(params, jax.random.key(0))
        >>> state, x, y = task.step(params, task.init_level(params), state, jax.random.key(1))
        >>> x.shape, y.shape
        ((3,), (2,))
    """

    metric = "T_"
    higher_is_better = True

    @property
    def input_size(self) -> int:
        return INPUT_SIZE

    @property
    def output_size(self) -> int:
        return OUTPUT_SIZE

    def init(self, params: CopyCurriculumParams, key: PRNGKeyArray) -> CopyState:
        del key
        zero = jnp.zeros((), jnp.int32)
        # pos == 2L + 1 with L = 0: the first step draws a fresh string.
        return CopyState(jnp.zeros(params.max_length, jnp.int32), zero, zero + 1)

    def init_level(self, params: CopyCurriculumParams) -> Array:
        return jnp.asarray(float(params.start))

    def step(self, params, level, state: CopyState, key):
        k_len, k_bit = jax.random.split(key)
        done = state.pos >= 2 * state.length + 1
        drawn = level.astype(jnp.int32) - jax.random.randint(
            k_len, (), 0, params.spread + 1, jnp.int32
        )
        length = jnp.where(done, jnp.clip(drawn, 1, params.max_length), state.length)
        pos = jnp.where(done, 0, state.pos)
        # A string's bits are drawn one per step as they are shown, not max_length at once
        # at every step (256 draws per stream and step were 15% of diag_rtrl's training
        # step on an LRU with n = 256).
        at = jnp.clip(pos, 0, params.max_length - 1)
        bit = jax.random.bernoulli(k_bit, 0.5).astype(jnp.int32)
        bits = jnp.where(pos < length, state.bits.at[at].set(bit), state.bits)
        eye = jnp.eye(INPUT_SIZE)
        shown = bits[at]
        x = jnp.where(pos < length, eye[shown], jnp.where(pos == length, eye[2], 0.0))
        recalled = bits[jnp.clip(pos - length - 1, 0, params.max_length - 1)]
        y = jnp.where(pos > length, jnp.eye(OUTPUT_SIZE)[recalled], 0.0)
        return CopyState(bits, length, pos + 1), x, y

    def loss(self, out, y):
        return -jnp.sum(y * jax.nn.log_softmax(out))

    def stats(self, out, y):
        scored = jnp.sum(y)
        bits = self.loss(out, y) / LOG2
        correct = scored * (jnp.argmax(out) == jnp.argmax(y)).astype(scored.dtype)
        return jnp.stack([bits, scored, correct])

    def init_running(self, params):
        del params
        return jnp.array([1.0, 1.0, 0.0])  # one bit per character: chance

    def next_level(self, params, level, running):
        bits_per_char = running[0] / jnp.maximum(running[1], 1e-12)
        grow = (bits_per_char < params.threshold) & (level < params.max_length)
        return (
            jnp.where(grow, level + 1, level),
            jnp.where(grow, self.init_running(params), running),
        )

    def report(self, params, level, totals):
        return {
            "T_": float(level),
            "bits_per_char": scored_mean(totals[0], totals[1]),
            "recall_accuracy": scored_mean(totals[2], totals[1]),
        }


class CopyParams(NamedTuple):
    """Parameters of ``copy``."""

    pattern: int = 20  # tokens to remember
    delay: int = 10  # blank steps between the pattern and the recall marker
    symbols: int = 8  # token alphabet

    @classmethod
    def checked(cls, **overrides: Any) -> "CopyParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        return cls(**check_params("copy", cls._field_defaults | overrides, COPY_BOUNDS))


COPY_BOUNDS = {"pattern": Bound(int, 1), "delay": Bound(int, 0), "symbols": Bound(int, 1)}


class Copy(Task):
    """The fixed-length copy task of online LRU learning (arXiv 2305.15947).

    A pattern of ``pattern`` tokens (from ``symbols`` categories), ``delay`` blank steps, a
    recall marker, then ``pattern`` steps in which the network outputs the pattern. The
    streams are reset together at every episode. Inputs: one-hot token, blank, marker.
    Headline metric: recall accuracy (per token).

    Examples:
        >>> import jax, rtrlx
        >>> task, params = rtrlx.tasks.make("copy", pattern=5, delay=2)
        >>> task.reset_period(params)
        13
    """

    symbols: int = eqx.field(static=True, default=8)
    metric = "accuracy"
    higher_is_better = True

    @property
    def input_size(self) -> int:
        return self.symbols + 1

    @property
    def output_size(self) -> int:
        return self.symbols

    def init(self, params: CopyParams, key: PRNGKeyArray):
        del key
        return (jnp.zeros(params.pattern, jnp.int32), jnp.zeros((), jnp.int32))

    def reset_period(self, params: CopyParams) -> int:
        return 2 * params.pattern + params.delay + 1

    def step(self, params, level, state, key):
        del level
        tokens, pos = state
        period = self.reset_period(params)
        pos = pos % period
        tokens = jnp.where(
            pos == 0,
            jax.random.randint(key, (params.pattern,), 0, params.symbols, jnp.int32),
            tokens,
        )
        recall_at = params.pattern + params.delay + 1
        eye = jnp.eye(self.input_size)
        x = jnp.where(
            pos < params.pattern,
            eye[tokens[jnp.clip(pos, 0, params.pattern - 1)]],
            jnp.where(pos == recall_at - 1, eye[params.symbols], 0.0),
        )
        target = tokens[jnp.clip(pos - recall_at, 0, params.pattern - 1)]
        y = jnp.where(pos >= recall_at, jnp.eye(params.symbols)[target], 0.0)
        return (tokens, pos + 1), x, y

    def loss(self, out, y):
        return -jnp.sum(y * jax.nn.log_softmax(out))

    def stats(self, out, y):
        scored = jnp.sum(y)
        return jnp.stack(
            [
                self.loss(out, y),
                scored,
                scored * (jnp.argmax(out) == jnp.argmax(y)).astype(scored.dtype),
            ]
        )

    def report(self, params, level, totals):
        return {
            "accuracy": scored_mean(totals[2], totals[1]),
            "loss": scored_mean(totals[0], totals[1]),
        }
