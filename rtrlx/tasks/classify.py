"""Sequence classification streams: ListOps (generated) and pixel-by-pixel images."""

import functools
import gzip
import random
import struct
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._extras import require
from ._base import Bound, Relation, Task, check_params, scored_mean

# ListOps vocabulary: the digits 0-9, then these, then the padding token.
LISTOPS_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
LISTOPS_END = "]"
LISTOPS_VOCAB = (*(str(d) for d in range(10)), *LISTOPS_OPERATORS, LISTOPS_END, "<pad>")
LISTOPS_PAD = len(LISTOPS_VOCAB) - 1
# The LRA recipe's probability that a node below the maximum depth is an operator.
LISTOPS_OPERATOR_P = 0.25


class SequenceState(NamedTuple):
    """One stream of a classification task: the example being read and the position."""

    index: Array  # int32, the example
    pos: Array  # int32, steps into the period


class Classification(Task):
    """A labelled sequence read one element per step; the label is the target at its end.

    Every stream reads a random training example in ``period`` steps (shorter examples are
    padded), and the streams are reset together between examples. The target is the
    one-hot label at the last step and zero elsewhere (no loss there). Headline metric:
    accuracy at the last step; :meth:`evaluate` gives it on the held-out examples.
    """

    period: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)  # > 0: one-hot tokens; 0: one real value
    classes: int = eqx.field(static=True)
    description: str = eqx.field(static=True)

    metric = "accuracy"
    higher_is_better = True

    @property
    def input_size(self) -> int:
        return self.channels or 1

    @property
    def output_size(self) -> int:
        return self.classes

    def encode(self, value: Array) -> Array:
        """The input vector of one sequence element."""
        if self.channels:
            return jax.nn.one_hot(value, self.channels)
        return jnp.reshape(value, (1,)).astype(jnp.zeros(()).dtype)

    def init(self, params: Any, key: PRNGKeyArray) -> SequenceState:
        del params, key
        zero = jnp.zeros((), jnp.int32)
        return SequenceState(zero, zero)

    def reset_period(self, params: Any) -> int:
        del params
        return self.period

    def step(self, params, level, state: SequenceState, key):
        del level
        pos = state.pos % self.period
        drawn = jax.random.randint(key, (), 0, params.train_x.shape[0], jnp.int32)
        index = jnp.where(pos == 0, drawn, state.index)
        x = self.encode(params.train_x[index, pos])
        label = jax.nn.one_hot(params.train_y[index], self.classes)
        y = jnp.where(pos == self.period - 1, label, 0.0)
        return SequenceState(index, pos + 1), x, y

    def loss(self, out, y):
        return -jnp.sum(y * jax.nn.log_softmax(out))

    def stats(self, out, y):
        scored = jnp.sum(y)
        correct = scored * (jnp.argmax(out) == jnp.argmax(y)).astype(scored.dtype)
        return jnp.stack([self.loss(out, y), scored, correct])

    def report(self, params, level, totals):
        """Accuracy and loss over the sequences scored; None for both before the first."""
        return {
            "accuracy": scored_mean(totals[2], totals[1]),
            "loss": scored_mean(totals[0], totals[1]),
        }

    def evaluate(self, params, cell, head, batch: int = 250) -> dict[str, float]:
        """Accuracy and loss on the held-out examples (``params.test_x``)."""
        correct, loss = 0.0, 0.0
        n = params.test_x.shape[0]
        for start in range(0, n, batch):
            c, s = _classify(
                self,
                cell,
                head,
                params.test_x[start : start + batch],
                params.test_y[start : start + batch],
            )
            correct, loss = correct + float(c), loss + float(s)
        return {"test_accuracy": correct / n, "test_loss": loss / n}


@eqx.filter_jit
def _classify(task: Classification, cell: Any, head: Any, xs: Array, ys: Array):
    """Correct answers and summed loss of a batch of examples ``xs (N, period)``."""

    def body(h, x):
        return jax.vmap(cell)(h, jax.vmap(task.encode)(x)), None

    h0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (xs.shape[0], *a.shape)), cell.init_state())
    h, _ = jax.lax.scan(body, h0, xs.T)
    logits = jax.vmap(lambda s: head(cell.features(s)))(h)
    loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), ys[:, None], 1)[:, 0]
    return jnp.sum(jnp.argmax(logits, -1).astype(ys.dtype) == ys), jnp.sum(loss)


class ClassificationParams(NamedTuple):
    """The data of a classification task (made by ``rtrlx.tasks.make``)."""

    train_x: Array  # (N, period): tokens (int32) or values
    train_y: Array  # (N,) int32
    test_x: Array
    test_y: Array


# ---------------------------------------------------------------------------------------
# ListOps


def _listops_tree(rng: random.Random, depth: int, max_depth: int, max_args: int):
    """One random expression, as LRA draws it: ``(tokens, value)``."""
    if depth >= max_depth or rng.random() > LISTOPS_OPERATOR_P:
        value = rng.randrange(10)
        return [value], value
    op = rng.randrange(len(LISTOPS_OPERATORS))
    tokens, values = [10 + op], []
    for _ in range(rng.randint(2, max_args)):
        sub, value = _listops_tree(rng, depth + 1, max_depth, max_args)
        tokens += sub
        values.append(value)
    tokens.append(10 + len(LISTOPS_OPERATORS))
    name = LISTOPS_OPERATORS[op]
    if name == "[MIN":
        result = min(values)
    elif name == "[MAX":
        result = max(values)
    elif name == "[MED":
        result = int(np.median(values))
    else:
        result = sum(values) % 10
    return tokens, result


def listops_examples(
    count: int,
    *,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ListOps expressions drawn as the Long Range Arena does, with their values.

    An expression is a tree whose nodes below ``max_depth`` are operators with probability
    1/4 (``[MIN``, ``[MAX``, ``[MED`` (integer part of the median) or ``[SM`` (sum mod
    10)) over 2 to ``max_args`` arguments, and digits otherwise. Trees whose token count
    (operators, digits and closing brackets; LRA's parentheses are dropped, as its input
    pipeline does) is not strictly between ``min_length`` and ``max_length`` are drawn
    again. The label is the expression's value, one of 10 classes.

    Args:
        count: number of expressions.
        min_length: exclusive lower bound on the token count.
        max_length: exclusive upper bound; sequences are padded to ``max_length``.
        max_depth: deepest operator level.
        max_args: most arguments of one operator.
        seed: seed of Python's ``random.Random``.

    Returns:
        ``(tokens (count, max_length) int32, labels (count,) int32)``; the token ids index
        :data:`LISTOPS_VOCAB` and the padding is ``LISTOPS_PAD``.

    Examples:
        >>> x, y = listops_examples(3, min_length=5, max_length=30)
        >>> x.shape, y.shape
        ((3, 30), (3,))
    """
    if not 1 <= min_length < max_length - 1:
        raise ValueError(
            f"listops: need 1 <= min_length < max_length - 1, got {min_length}, {max_length}."
        )
    rng = random.Random(seed)
    tokens = np.full((count, max_length), LISTOPS_PAD, np.int32)
    labels = np.zeros(count, np.int32)
    made = 0
    for _ in range(10_000 * max(count, 1)):
        if made == count:
            break
        seq, value = _listops_tree(rng, 1, max_depth, max_args)
        if min_length < len(seq) < max_length:
            tokens[made, : len(seq)] = seq
            labels[made] = value
            made += 1
    if made < count:
        raise ValueError(
            f"listops: drew only {made} of {count} expressions with {min_length} < length < "
            f"{max_length}; widen the range or raise max_depth / max_args."
        )
    return tokens, labels


class ListOpsParams(NamedTuple):
    """Parameters of ``listops`` (the generator's; the data is made from them)."""

    examples: int = 2000  # training expressions
    test_examples: int = 500
    min_length: int = 500
    max_length: int = 2000
    max_depth: int = 10
    max_args: int = 10
    seed: int = 0  # of the generator (the test set uses seed + 1)

    @classmethod
    def checked(cls, **overrides: Any) -> "ListOpsParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        values = cls._field_defaults | overrides
        return cls(**check_params("listops", values, LISTOPS_BOUNDS, LISTOPS_RELATIONS))


LISTOPS_BOUNDS = {
    "examples": Bound(int, 1),
    "test_examples": Bound(int, 1),
    "min_length": Bound(int, 1),
    "max_length": Bound(int, 3),
    "max_depth": Bound(int, 1),
    "max_args": Bound(int, 2),  # an operator takes 2 to max_args arguments
    "seed": Bound(int),
}
LISTOPS_RELATIONS = (
    Relation(
        ("min_length", "max_length"),
        lambda shortest, longest: shortest < longest - 1,
        "min_length < max_length - 1 (lengths strictly between the two)",
    ),
)


def make_listops(**overrides: Any) -> tuple[Classification, ClassificationParams]:
    """The ``listops`` task and its generated data."""
    p = ListOpsParams.checked(**overrides)
    kw = dict(
        min_length=p.min_length,
        max_length=p.max_length,
        max_depth=p.max_depth,
        max_args=p.max_args,
    )
    train = listops_examples(p.examples, seed=p.seed, **kw)
    test = listops_examples(p.test_examples, seed=p.seed + 1, **kw)
    task = Classification(
        period=p.max_length,
        channels=len(LISTOPS_VOCAB),
        classes=10,
        description=f"ListOps (LRA recipe): {p.examples} training and {p.test_examples} "
        f"test expressions of {p.min_length}-{p.max_length} tokens",
    )
    arrays = (jnp.asarray(a) for a in (*train, *test))
    return task, ClassificationParams(*arrays)


# ---------------------------------------------------------------------------------------
# Pixel-by-pixel images

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), plain or gzipped."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, dtype_code, ndim = struct.unpack(">BBBB", data[:4])
    if dtype_code != 0x08:
        raise ValueError(f"{path}: expected unsigned bytes (IDX type 0x08), got {dtype_code:#x}.")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    return None


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR):
    """Fashion-MNIST's four IDX files from ``root``, or None when they are not all there.

    Returns:
        ``(train_x (60000, 784) float in [0, 1], train_y, test_x, test_y)`` or None.
    """
    root = Path(root)
    stems = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    paths = [_find(root, s) for s in stems]
    if any(p is None for p in paths):
        return None
    tx, ty, vx, vy = (_read_idx(p) for p in paths if p is not None)
    return (
        tx.reshape(len(tx), -1) / 255.0,
        ty.astype(np.int32),
        vx.reshape(len(vx), -1) / 255.0,
        vy.astype(np.int32),
    )


@functools.cache
def load_digits() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits, split 1497 / 300 by a fixed permutation.

    Returns:
        ``(train_x (1497, 64) float in [0, 1], train_y, test_x (300, 64), test_y)``.
    """
    sk_digits = require("sklearn.datasets", "the pixel task's digits").load_digits
    pixels, labels = sk_digits(return_X_y=True)
    x, y = np.asarray(pixels) / 16.0, np.asarray(labels).astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[300:], y[300:], x[:300], y[:300]


class PixelParams(NamedTuple):
    """Parameters of ``pixel``."""

    dataset: str = "auto"  # "auto" (Fashion-MNIST when installed, else digits), or either
    root: str = FASHION_MNIST_DIR  # where Fashion-MNIST's IDX files are looked for
    examples: int = 0  # keep only this many training images (0: all)
    test_examples: int = 0  # and this many test images (0: all)

    @classmethod
    def checked(cls, **overrides: Any) -> "PixelParams":
        """The parameters, each checked (``ValueError`` names a bad one)."""
        p = cls(**check_params("pixel", cls._field_defaults | overrides, PIXEL_BOUNDS))
        if p.dataset not in ("auto", "fashion-mnist", "digits"):
            raise ValueError(
                f"task 'pixel': parameter dataset must be auto, fashion-mnist or digits; "
                f"got {p.dataset!r}."
            )
        return p._replace(root=str(p.root))


PIXEL_BOUNDS = {"examples": Bound(int, 0), "test_examples": Bound(int, 0)}


def make_pixel(**overrides: Any) -> tuple[Classification, ClassificationParams]:
    """The ``pixel`` task: one grey level per step, the class at the last pixel."""
    p = PixelParams.checked(**overrides)
    data, name = None, "digits"
    if p.dataset in ("auto", "fashion-mnist"):
        data = load_fashion_mnist(p.root)
        if data is not None:
            name = "fashion-mnist"
        elif p.dataset == "fashion-mnist":
            raise FileNotFoundError(
                f"pixel: Fashion-MNIST's IDX files are not in {p.root}. Install Debian's "
                "dataset-fashion-mnist package, pass --task-param root=DIR, or use "
                "dataset=digits."
            )
    if data is None:
        data = load_digits()
    tx, ty, vx, vy = data
    if p.examples:
        tx, ty = tx[: p.examples], ty[: p.examples]
    if p.test_examples:
        vx, vy = vx[: p.test_examples], vy[: p.test_examples]
    if name == "fashion-mnist":
        description = f"sequential Fashion-MNIST from {p.root} ({len(tx)} train, 784 steps)"
    else:
        description = f"scikit-learn's 8x8 digits ({len(tx)} train, 64 steps)" + (
            ""
            if p.dataset == "digits"
            else f"; Fashion-MNIST was not found in {p.root} (Debian: dataset-fashion-mnist)"
        )
    task = Classification(period=tx.shape[1], channels=0, classes=10, description=description)
    arrays = (jnp.asarray(a) for a in (tx, ty, vx, vy))
    return task, ClassificationParams(*arrays)
