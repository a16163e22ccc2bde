"""The copy curriculum exactly as the KF-RTRL/OK authors' code runs it (``copy-ok``)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ._base import Bound, Relation, Task, check_params, scored_mean

#: Symbols in and out: the two bits, the start marker and the filler.
VOCAB = 4
BIT0, BIT1, MARKER, FILLER = 0, 1, 2, 3
LOG2 = 0.6931471805599453


class CopyOKParams(NamedTuple):
    """Parameters of ``copy-ok`` (defaults: the official OK code's)."""

    start: int = 1  # the curriculum's first level T_
    max_length: int = 256  # the longest string a stream can hold
    threshold: float = 0.15  # bits per step (all steps) below which T_ grows by one
    spread: int = 4  # each string has length max(1, T_ - U{0..spread})
    smoothing: float = 0.001  # weight of a step in the running loss
    restart_running: float = 0.3  # the running loss after each increase of T_
    restart_streams: int = 1  # 1: a stream's memory restarts at each of its episodes

    @classmethod
    def checked(cls, **overrides: Any) -> "CopyOKParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        values = cls._field_defaults | overrides
        return cls(**check_params("copy-ok", values, BOUNDS, RELATIONS))


BOUNDS = {
    "start": Bound(int, 1),
    "max_length": Bound(int, 1),
    "threshold": Bound(float, 0, low_open=True),
    "spread": Bound(int, 0),
    "smoothing": Bound(float, 0, 1, low_open=True),
    "restart_running": Bound(float, 0, low_open=True),
    "restart_streams": Bound(int, 0, 1),
}
RELATIONS = (
    Relation(
        ("start", "max_length"), lambda start, longest: start <= longest, "start <= max_length"
    ),
)


class CopyOKState(NamedTuple):
    """One stream of ``copy-ok``."""

    bits: Array  # (max_length,) int32, the current string
    length: Array  # int32, its length L
    pos: Array  # int32, steps into the episode (episode length 2 L + 2)


class CopyOK(Task):
    """The binary copy curriculum in the format of the official OK code.

    An episode of a string of ``L`` bits is ``2 L + 2`` steps of 4 one-hot symbols. Input:
    the start marker, the ``L`` bits, then ``L + 1`` fillers. Target: ``L + 1`` fillers,
    the marker, then the ``L`` bits. The loss (cross-entropy) counts at **every** step,
    fillers and marker included. Each stream draws ``L = max(1, T_ - U{0..spread})`` when it
    starts an episode and (``restart_streams=1``) restarts its memory there: hidden state
    and the learner's traces, per stream.

    The curriculum reads the batch-mean loss of every step in bits, averaged with weight
    ``smoothing`` = 0.001 from 1.0. When it falls below 0.15, ``T_`` grows by one and the
    average restarts at 0.3. The official code checks this when a stream starts an episode,
    rtrlx at every step: a level-up comes at most one episode's start earlier.

    Differences from rtrlx's own ``copy-curriculum`` (3 inputs, 2 outputs, loss on recall
    steps only, no restarts, weight 0.01, restart at 1.0) are deliberate: this task is for
    the papers' recipes (:mod:`rtrlx.recipes`), whose ``T_`` is comparable to theirs.

    Examples:
        >>> import jax, rtrlx
        >>> task, params = rtrlx.tasks.make("copy-ok")
        >>> state = task.init(params, jax.random.key(0))
        >>> state, x, y = task.step(params, task.init_level(params), state, jax.random.key(1))
        >>> int(x.argmax()), int(y.argmax())  # the marker in, the filler out
        (2, 3)

    References:
        Mujika, Meier, Steger. Approximating Real-Time Recurrent Learning with Random
        Kronecker Factors. NeurIPS 2018. https://arxiv.org/abs/1805.10842

        Benzing, Gauy, Mujika, Martinsson, Steger. Optimal Kronecker-Sum Approximation of
        Real Time Recurrent Learning. ICML 2019. https://arxiv.org/abs/1902.03993
    """

    metric = "T_"
    higher_is_better = True
    running_mean = True

    @property
    def input_size(self) -> int:
        return VOCAB

    @property
    def output_size(self) -> int:
        return VOCAB

    def init(self, params: CopyOKParams, key: PRNGKeyArray) -> CopyOKState:
        del key
        zero = jnp.zeros((), jnp.int32)
        # pos == 2L + 2 with L = 0: the first step starts an episode.
        return CopyOKState(jnp.zeros(params.max_length, jnp.int32), zero, zero + 2)

    def init_level(self, params: CopyOKParams) -> Array:
        return jnp.asarray(float(params.start))

    def restarts(self, params: CopyOKParams, state: CopyOKState) -> Array | None:
        if not params.restart_streams:
            return None
        return state.pos >= 2 * state.length + 2

    def step(self, params, level, state: CopyOKState, key):
        k_len, k_bit = jax.random.split(key)
        done = state.pos >= 2 * state.length + 2
        drawn = level.astype(jnp.int32) - jax.random.randint(
            k_len, (), 0, params.spread + 1, jnp.int32
        )
        length = jnp.where(done, jnp.clip(drawn, 1, params.max_length), state.length)
        pos = jnp.where(done, 0, state.pos)
        shown = pos - 1  # the bit shown at this step, while 0 <= shown < L
        at = jnp.clip(shown, 0, params.max_length - 1)
        bit = jax.random.bernoulli(k_bit, 0.5).astype(jnp.int32)
        showing = (shown >= 0) & (shown < length)
        bits = jnp.where(showing, state.bits.at[at].set(bit), state.bits)
        x_symbol = jnp.where(pos == 0, MARKER, jnp.where(showing, bits[at], FILLER))
        recalled = pos - length - 2  # the bit to recall at this step, while >= 0
        y_symbol = jnp.where(
            pos <= length,
            FILLER,
            jnp.where(
                pos == length + 1, MARKER, bits[jnp.clip(recalled, 0, params.max_length - 1)]
            ),
        )
        eye = jnp.eye(VOCAB)
        return CopyOKState(bits, length, pos + 1), eye[x_symbol], eye[y_symbol]

    def loss(self, out, y):
        return -jnp.sum(y * jax.nn.log_softmax(out))

    def stats(self, out, y):
        bits = self.loss(out, y) / LOG2
        correct = (jnp.argmax(out) == jnp.argmax(y)).astype(bits.dtype)
        recall = (jnp.argmax(y) < MARKER).astype(bits.dtype)
        return jnp.stack([bits, jnp.ones_like(bits), recall * correct, recall])

    def init_running(self, params):
        del params
        return jnp.array([1.0, 1.0, 0.0, 0.0])

    def next_level(self, params, level, running):
        bits_per_step = running[0] / jnp.maximum(running[1], 1e-12)
        grow = (bits_per_step < params.threshold) & (level < params.max_length)
        restart = jnp.stack([params.restart_running, 1.0, 0.0, 0.0]).astype(running.dtype)
        return jnp.where(grow, level + 1, level), jnp.where(grow, restart, running)

    def report(self, params, level, totals):
        return {
            "T_": float(level),
            "bits_per_step": scored_mean(totals[0], totals[1]),
            "recall_accuracy": scored_mean(totals[2], totals[3]),
        }
