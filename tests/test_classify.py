"""Sequence classification streams: ListOps (generated as LRA does) and pixel images."""

import gzip
import struct

import jax
import numpy as np
import pytest

import rtrlx
from rtrlx.tasks import listops_examples
from rtrlx.tasks.classify import LISTOPS_PAD, LISTOPS_VOCAB


def evaluate_listops(tokens):
    """An independent evaluator: a stack machine over the token sequence."""
    stack = []
    for t in tokens:
        word = LISTOPS_VOCAB[t]
        if word == "<pad>":
            break
        if word == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            args = args[::-1]
            value = {
                "[MIN": min(args),
                "[MAX": max(args),
                "[MED": int(np.median(args)),
                "[SM": sum(args) % 10,
            }[op]
            stack.append(value)
        elif word.startswith("["):
            stack.append(word)
        else:
            stack.append(int(word))
    assert len(stack) == 1
    return stack[0]


def test_listops_labels_are_the_expressions_values():
    x, y = listops_examples(60, min_length=20, max_length=200, seed=3)
    lengths = (x != LISTOPS_PAD).sum(1)
    assert np.all((lengths > 20) & (lengths < 200))
    for row, label in zip(x, y, strict=True):
        assert np.all(row[(row != LISTOPS_PAD).sum() :] == LISTOPS_PAD)  # padding at the end
        assert evaluate_listops(row) == label
    ops = {LISTOPS_VOCAB[t] for t in np.unique(x)}
    assert {"[MIN", "[MAX", "[MED", "[SM", "]"} <= ops
    assert len(np.unique(y)) >= 8  # ten classes, nearly all present


def test_listops_default_recipe_and_determinism():
    x, y = listops_examples(5, seed=7)  # LRA's lengths: 500 to 2000 tokens
    assert x.shape == (5, 2000)
    lengths = (x != LISTOPS_PAD).sum(1)
    assert np.all((lengths > 500) & (lengths < 2000))
    x2, y2 = listops_examples(5, seed=7)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="min_length < max_length"):
        listops_examples(1, min_length=10, max_length=5)


def test_listops_stream_shows_tokens_and_asks_at_the_end():
    task, params = rtrlx.tasks.make(
        "listops", examples=4, test_examples=3, min_length=5, max_length=40
    )
    assert task.input_size == 16 and task.output_size == 10
    assert task.reset_period(params) == 40
    state = task.init(params, jax.random.key(0))
    xs, ys = [], []
    for t in range(40):
        state, x, y = task.step(params, task.init_level(params), state, jax.random.key(t))
        xs.append(x)
        ys.append(y)
    index = int(state.index)
    np.testing.assert_array_equal(np.argmax(np.stack(xs), 1), params.train_x[index])
    assert not np.any(np.stack(ys)[:-1])
    assert int(np.argmax(ys[-1])) == int(params.train_y[index])


def test_listops_reports_nothing_before_a_sequence_is_scored():
    task, params = rtrlx.tasks.make(
        "listops", examples=2, test_examples=2, min_length=5, max_length=40
    )
    level = task.init_level(params)
    # A chunk shorter than one sequence: no label seen yet, so no accuracy (not 0).
    assert task.report(params, level, np.zeros(3)) == {"accuracy": None, "loss": None}
    report = task.report(params, level, np.array([3.0, 4.0, 1.0]))  # loss, scored, correct
    assert report == {"accuracy": 0.25, "loss": 0.75}


def test_listops_parameters_are_checked_before_generating():
    with pytest.raises(ValueError, match=r"task 'listops': parameter max_length must be an "):
        rtrlx.tasks.make("listops", max_length=0)
    with pytest.raises(ValueError, match=r"parameter examples must be an integer >= 1; got 'x'"):
        rtrlx.tasks.make("listops", examples="x")


def test_pixel_falls_back_to_digits_and_says_so(tmp_path):
    task, params = rtrlx.tasks.make("pixel", root=str(tmp_path), examples=50)
    assert "8x8 digits" in task.description and "not found" in task.description
    assert params.train_x.shape == (50, 64) and params.test_x.shape == (300, 64)
    assert task.input_size == 1 and task.reset_period(params) == 64
    assert 0.0 <= float(params.train_x.min()) and float(params.train_x.max()) <= 1.0
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        rtrlx.tasks.make("pixel", root=str(tmp_path), dataset="fashion-mnist")
    with pytest.raises(ValueError, match="auto, fashion-mnist or digits"):
        rtrlx.tasks.make("pixel", dataset="cifar")


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_pixel_reads_fashion_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28))
    labels = np.arange(6) % 10
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    task, params = rtrlx.tasks.make("pixel", root=str(tmp_path))
    assert "Fashion-MNIST" in task.description
    assert task.reset_period(params) == 784
    np.testing.assert_allclose(params.train_x, images.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(params.test_y, labels)


@pytest.mark.slow  # minutes of end-to-end work: make test-slow
def test_pixel_trains_a_deep_stack_online(tmp_path):
    from rtrlx.train import TrainConfig, train

    config = TrainConfig(
        task="pixel",
        cell="deep-lru",
        layers=2,
        learner="online_deep",
        hidden=16,
        steps=64 * 50,
        batch=16,
        lr=0.01,
        update_every=64,  # one update per image
        chunk=640,
        task_params={"root": str(tmp_path)},
    )
    result = train(config)
    assert "8x8 digits" in result["data"]
    # Chance is 0.1; 50 updates already lift the held-out accuracy well above it (0.45).
    assert result["metrics"]["test_accuracy"] > 0.3, result["metrics"]
