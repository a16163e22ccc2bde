"""Character-level language modelling as the papers run it, on the run driver.

The standard protocol (Zaremba et al. 2014; the Fast-Slow RNN paper's code): the training
text cut into ``batch`` contiguous streams, read in non-overlapping windows of ``window``
characters; the state carried from one window to the next (no gradient across the
boundary) and reset at the start of each epoch; one optimizer update per window on the
window's summed cross-entropy (mean over streams), with the gradient clipped to a global
norm; an optional embedding, dropout and zoneout; validation on the full validation text
after every ``eval_every`` windows, the best model kept, the learning rate decayed when
validation stops improving; at the end, **test** bits per character of the best model on the
full test text. Every character of a split is scored (the last piece is padded and masked).

``lm(LMConfig(...), out=DIR)`` writes the driver's files (``metrics.jsonl`` with train and
validation BPC against windows and wall-clock, ``checkpoint.eqx``, ``result.json``) and
``best.eqx`` (the best model's parameters) and ``curves.png``; ``rtrlx lm`` is its command
line, ``rtrlx sample --run DIR`` prints text drawn from the trained model.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._tree import standard_promotion, with_standard_promotion
from .cells import build_cell, check_cell_name
from .cells._compose import dropout
from .driver import ChunkInfo, Job, RunInfo, drive
from .tasks.ptb import LOG2, _corpus

BEST = "best.eqx"

__all__ = [
    "LMConfig",
    "LMModel",
    "bpc",
    "build_model",
    "hidden_for",
    "lm",
    "load_model",
    "parameters",
    "sample",
]


@dataclass(frozen=True)
class LMConfig:
    """One language-modelling run.

    Attributes:
        cell: the recurrent cell (``rtrlx.cells.build_cell``: ``lstm``, ``fs-lstm:2``,
            ``stacked-lstm:2``, ``rhn``, ...).
        hidden: units of the cell (of each fast cell of an ``fs-*``; of each layer).
        slow: the slow cell's units (``fs-*`` only; 0: ``round(hidden * 4 / 7)``, the
            paper's 400:700).
        embed: embedding width (0: the one-hot character is the input).
        batch: parallel streams of the training text.
        window: characters per window (the truncation length of BPTT).
        windows: windows (updates) of the run in all.
        minutes: wall-clock budget of the run (0: none); the run stops after the first
            evaluation past it, checkpointed (``--resume`` with more minutes goes on).
        lr: Adam's learning rate.
        clip: global norm the gradient is clipped to (0: none).
        dropout: dropout rate on the input embedding, the output and the cell's own
            hand-overs (FSRNN: F1 to S and S to F2; Stacked: between layers).
        zoneout_h: zoneout rate of ``h`` (``fs-*`` only).
        zoneout_c: zoneout rate of ``c`` (``fs-*`` only).
        eval_every: windows between validations (also the run's chunk).
        eval_streams: pieces a validation or test text is cut into, read in parallel.
        patience: validations without improvement before the learning rate decays.
        decay: factor of that decay.
        seed: seed of the parameters and of dropout.
        checkpoint_every: windows between checkpoints (0: after every validation).
    """

    cell: str = "fs-lstm:2"
    hidden: int = 128
    slow: int = 0
    embed: int = 0
    batch: int = 32
    window: int = 100
    windows: int = 1_000
    minutes: float = 0.0
    lr: float = 2e-3
    clip: float = 1.0
    dropout: float = 0.0
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    eval_every: int = 100
    eval_streams: int = 64
    patience: int = 2
    decay: float = 0.1
    seed: int = 0
    checkpoint_every: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming a bad field and its valid values."""
        check_cell_name(self.cell)
        for name in ("hidden", "batch", "window", "windows", "eval_every", "eval_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name in ("slow", "embed", "patience", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.slow and not self.cell.startswith("fs-"):
            raise ValueError(f"slow applies to fs-* cells, not to {self.cell!r}.")
        for name in ("dropout", "zoneout_h", "zoneout_c"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        if (self.zoneout_h or self.zoneout_c) and not self.cell.startswith("fs-"):
            raise ValueError(f"zoneout applies to fs-* cells, not to {self.cell!r}.")
        if not self.lr > 0 or self.clip < 0 or self.minutes < 0:
            raise ValueError("lr must be > 0, clip >= 0 and minutes >= 0.")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}.")
        train = _corpus()[1]["train"].shape[0]
        if (train // self.batch - 1) // self.window < 1:
            raise ValueError(
                f"batch {self.batch} x window {self.window} leaves no whole window per stream "
                f"in the {train:,}-character training text; lower them."
            )

    @property
    def slow_size(self) -> int | None:
        """The slow cell's units (None for cells without one)."""
        if not self.cell.startswith("fs-"):
            return None
        return self.slow or max(1, round(self.hidden * 4 / 7))


class LMModel(eqx.Module):
    """Embedding (or one-hot), recurrent cell and softmax readout over the characters."""

    embedding: jax.Array | None
    cell: Any
    head: eqx.nn.Linear
    vocab: int = eqx.field(static=True)

    def inputs(self, codes: jax.Array) -> jax.Array:
        """The cell's inputs for character codes of any shape."""
        if self.embedding is None:
            return jax.nn.one_hot(codes, self.vocab, dtype=self.head.weight.dtype)
        return self.embedding[codes]

    def logits(self, state: Any) -> jax.Array:
        """The next character's logits from one stream's state."""
        return self.head(self.cell.features(state))

    def parameters(self) -> int:
        """The number of trainable parameters."""
        leaves = jax.tree.leaves(eqx.filter(self, eqx.is_inexact_array))
        return int(sum(a.size for a in leaves))


def build_model(config: LMConfig, key: jax.Array) -> LMModel:
    """The model of a run at its initial parameters."""
    vocab = len(_corpus()[0])
    k_embed, k_cell, k_head = jax.random.split(key, 3)
    width = config.embed or vocab
    cell = build_cell(
        config.cell,
        width,
        config.hidden,
        key=k_cell,
        slow_size=config.slow_size,
        zoneout=(config.zoneout_h, config.zoneout_c),
    )
    embedding = None
    if config.embed:
        embedding = jax.random.normal(k_embed, (vocab, config.embed)) / math.sqrt(config.embed)
    head = eqx.nn.Linear(cell.output_size, vocab, key=k_head)
    return LMModel(embedding, cell, head, vocab)


def parameters(config: LMConfig) -> int:
    """The trainable parameters of a run's model (counted without building it)."""
    model = jax.eval_shape(lambda: build_model(config, jax.random.key(0)))
    leaves = [a for a in jax.tree.leaves(model) if isinstance(a, jax.ShapeDtypeStruct)]
    return int(sum(a.size for a in leaves if jnp.issubdtype(a.dtype, jnp.inexact)))


def hidden_for(config: LMConfig, target: int) -> LMConfig:
    """``config`` with the ``hidden`` size whose parameter count is nearest ``target``.

    An ``fs-*`` cell keeps its slow cell at 4/7 of the fast one (the paper's 400:700), so
    cells of different shapes compare at equal parameters.

    Examples:
        >>> from rtrlx.lm import LMConfig, hidden_for, parameters
        >>> c = hidden_for(LMConfig(cell="lstm"), 1_000_000)
        >>> c.hidden, abs(parameters(c) - 1_000_000) < 5_000
        (469, True)
    """
    if target < 1:
        raise ValueError(f"the parameter target must be >= 1, got {target}.")

    def count(hidden: int) -> int:
        return parameters(dataclasses.replace(config, hidden=hidden, slow=0))

    low, high = 1, 2
    while count(high) < target:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    best = min((low, high), key=lambda h: abs(count(h) - target))
    return dataclasses.replace(config, hidden=best, slow=0)


def _advance(model: LMModel, state: Any, x: jax.Array, key: Any, rate: float) -> Any:
    """One step of one stream: the regularised training step when ``key`` is given."""
    if key is None:
        return model.cell(state, x)
    regularised = getattr(model.cell, "regularised", None)
    if regularised is not None:
        return regularised(state, x, key, rate)
    return model.cell(state, x)


def window_loss(
    model: LMModel, state: Any, xs: jax.Array, ys: jax.Array, key: Any, rate: float
) -> tuple[jax.Array, Any]:
    """Summed cross-entropy (nats) of a window, mean over streams, and the final state.

    Args:
        model: the model.
        state: the streams' states, leaves ``(batch, ...)``.
        xs: input codes ``(batch, T)``.
        ys: target codes ``(batch, T)``.
        key: None (no dropout, deterministic zoneout) or the window's PRNG key.
        rate: the dropout rate.

    Returns:
        ``(loss, final state)``.
    """
    batch, steps = xs.shape
    keys = None if key is None else jax.random.split(key, steps)

    def body(h, inp):
        x, y, k = inp
        e = model.inputs(x)  # (batch, width)
        ks = [None, None, None] if k is None else list(jax.random.split(k, 3))
        e = dropout(e, rate, ks[0])
        if ks[1] is None:
            h = jax.vmap(lambda s, v: _advance(model, s, v, None, rate))(h, e)
        else:
            step_keys = jax.random.split(ks[1], batch)
            h = jax.vmap(lambda s, v, kk: _advance(model, s, v, kk, rate))(h, e, step_keys)
        feats = dropout(jax.vmap(model.cell.features)(h), rate, ks[2])
        logits = jax.vmap(model.head)(feats)
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
        return h, jnp.sum(ce)

    h, ce = lax.scan(body, state, (xs.T, ys.T, keys))
    return jnp.sum(ce) / batch, h


def bpc(model: LMModel, codes: jax.Array, streams: int = 64) -> float:
    """Bits per character of ``model`` on a text, every character after the first scored.

    The text is cut into ``streams`` contiguous pieces read in parallel, each from a zero
    state carried through its piece; the last piece is padded and its padding masked.

    Args:
        model: the model.
        codes: the text as character codes ``(N,)``.
        streams: pieces read in parallel.

    Returns:
        The mean over the ``N - 1`` predicted characters of ``-log2 p(next)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from rtrlx.lm import LMConfig, build_model, bpc
        >>> model = build_model(LMConfig(cell="lstm", hidden=4), jax.random.key(0))
        >>> model = eqx.tree_at(lambda m: m.head.weight, model, model.head.weight * 0)
        >>> model = eqx.tree_at(lambda m: m.head.bias, model, model.head.bias * 0)
        >>> round(bpc(model, jnp.arange(200) % 50, streams=4), 4)  # uniform: log2(50)
        5.6439
    """
    return float(_bpc(model, jnp.asarray(codes), streams))


@eqx.filter_jit
def _bpc(model: LMModel, codes: jax.Array, streams: int) -> jax.Array:
    targets = codes.shape[0] - 1
    per = -(-targets // streams)
    pad = per * streams - targets
    xs = jnp.pad(codes[:-1], (0, pad)).reshape(streams, per)
    ys = jnp.pad(codes[1:], (0, pad)).reshape(streams, per)
    mask = (jnp.arange(per * streams) < targets).reshape(streams, per)
    init = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (streams, *a.shape)), model.cell.init_state()
    )

    def body(h, inp):
        x, y, m = inp
        h = jax.vmap(model.cell)(h, model.inputs(x))
        logits = jax.vmap(model.logits)(h)
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
        return h, jnp.sum(jnp.where(m, ce, 0.0))

    _, ce = lax.scan(body, init, (xs.T, ys.T, mask.T))
    return jnp.sum(ce) / targets / LOG2


class Carry(NamedTuple):
    """What the run carries from window to window (all arrays: checkpointable)."""

    params: Any
    opt_state: Any
    state: Any  # the streams' recurrent states, leaves (batch, ...)
    window: jax.Array  # index of the next window within the epoch, int32
    epoch: jax.Array  # int32
    key: jax.Array
    best_params: Any
    best_valid: jax.Array  # best validation BPC so far (inf before the first)
    bad_evals: jax.Array  # validations since the last improvement, int32
    seconds: jax.Array  # wall-clock seconds the run has taken, over all its resumes


class Output(NamedTuple):
    """What one chunk reports."""

    train_nats: jax.Array  # summed window losses (nats per stream)
    windows: jax.Array  # windows in the chunk
    valid_bpc: jax.Array
    lr: jax.Array


@dataclass
class _Run:
    config: LMConfig
    static: Any
    optimizer: Any
    streams: jax.Array  # (batch, L) training codes
    per_epoch: int
    valid: jax.Array
    test: jax.Array

    def model(self, params: Any) -> LMModel:
        return eqx.combine(params, self.static)


def _build(config: LMConfig) -> tuple[_Run, Carry]:
    config.validate()
    codes = _corpus()[1]
    k_model, k_loop = jax.random.split(jax.random.key(config.seed))
    model = build_model(config, k_model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=config.lr)
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip), adam) if config.clip else adam
    length = codes["train"].shape[0] // config.batch
    streams = jnp.asarray(codes["train"][: length * config.batch].reshape(config.batch, length))
    run = _Run(
        config,
        static,
        optimizer,
        streams,
        (length - 1) // config.window,
        jnp.asarray(codes["valid"]),
        jnp.asarray(codes["test"]),
    )
    zero = jax.tree.map(
        lambda a: jnp.zeros((config.batch, *a.shape), a.dtype), model.cell.init_state()
    )
    carry = Carry(
        params,
        with_standard_promotion(optimizer.init, params),
        zero,
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
        k_loop,
        params,
        jnp.asarray(jnp.inf, params.head.weight.dtype),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32),
    )
    return run, carry


def _lr(opt_state: Any) -> jax.Array:
    """The learning rate in an ``inject_hyperparams`` state (the last of a chain)."""
    inner = opt_state[-1] if isinstance(opt_state, tuple) else opt_state
    return inner.hyperparams["learning_rate"]


def _with_lr(opt_state: Any, lr: jax.Array) -> Any:
    """``opt_state`` with its learning rate replaced."""
    chained = isinstance(opt_state, tuple) and not hasattr(opt_state, "hyperparams")
    inner: Any = opt_state[-1] if chained else opt_state
    inner = inner._replace(hyperparams={**inner.hyperparams, "learning_rate": lr})
    return (*opt_state[:-1], inner) if chained else inner


def _windows(run: _Run) -> Callable[[Carry, int], tuple[Carry, jax.Array]]:
    config = run.config

    def one(carry: Carry, _: Any) -> tuple[Carry, jax.Array]:
        start = carry.window * config.window
        xs = lax.dynamic_slice_in_dim(run.streams, start, config.window, axis=1)
        ys = lax.dynamic_slice_in_dim(run.streams, start + 1, config.window, axis=1)
        key, k_win = jax.random.split(carry.key)
        noisy = config.dropout or config.zoneout_h or config.zoneout_c

        def loss(params):
            model = run.model(params)
            state = lax.stop_gradient(carry.state)
            return window_loss(model, state, xs, ys, k_win if noisy else None, config.dropout)

        (value, state), grads = jax.value_and_grad(loss, has_aux=True)(carry.params)
        with standard_promotion():
            updates, opt_state = run.optimizer.update(grads, carry.opt_state, carry.params)
        params = optax.apply_updates(carry.params, updates)
        last = carry.window + 1 >= run.per_epoch
        state = jax.tree.map(lambda a: jnp.where(last, jnp.zeros_like(a), a), state)
        carry = carry._replace(
            params=params,
            opt_state=opt_state,
            state=state,
            window=jnp.where(last, 0, carry.window + 1).astype(jnp.int32),
            epoch=carry.epoch + last.astype(jnp.int32),
            key=key,
        )
        return carry, value

    @eqx.filter_jit
    def windows(carry: Carry, n: int) -> tuple[Carry, jax.Array]:
        carry, values = lax.scan(one, carry, None, length=n)
        return carry, jnp.sum(values)

    return windows


@eqx.filter_jit
def _select(carry: Carry, valid: jax.Array, patience: int, decay: float) -> Carry:
    """Keep the best model; decay the learning rate after ``patience`` bad validations."""
    better = valid < carry.best_valid
    best = jax.tree.map(lambda a, b: jnp.where(better, a, b), carry.params, carry.best_params)
    bad = jnp.where(better, 0, carry.bad_evals + 1)
    decayed = bad >= patience
    lr = _lr(carry.opt_state)
    return carry._replace(
        opt_state=_with_lr(carry.opt_state, jnp.where(decayed, lr * decay, lr).astype(lr.dtype)),
        best_params=best,
        best_valid=jnp.minimum(valid, carry.best_valid),
        bad_evals=jnp.where(decayed, 0, bad).astype(jnp.int32),
    )


def _job(config: LMConfig, out: str | None) -> Job:
    run, carry0 = _build(config)
    windows = _windows(run)

    def chunk(carry: Carry, n: int) -> tuple[Carry, Output]:
        tic = time.perf_counter()
        carry, nats = windows(carry, n)
        valid = _bpc(run.model(carry.params), run.valid, config.eval_streams)
        carry = _select(carry, valid, config.patience, config.decay)
        jax.block_until_ready(carry)
        seconds = carry.seconds + (time.perf_counter() - tic)
        carry = carry._replace(seconds=seconds.astype(carry.seconds.dtype))
        return carry, Output(nats, jnp.asarray(n), valid, _lr(carry.opt_state))

    def record(carry: Carry, output: Output, info: ChunkInfo) -> dict:
        chars = info.stop * config.window * config.batch
        return {
            "train_bpc": float(output.train_nats) / int(output.windows) / config.window / LOG2,
            "valid_bpc": float(output.valid_bpc),
            "best_valid_bpc": float(carry.best_valid),
            "lr": float(output.lr),
            "epoch": int(carry.epoch) + int(carry.window) / run.per_epoch,
            "chars": chars,
            "chars_per_second": (info.stop - info.start)
            * config.window
            * config.batch
            / info.seconds,
            "wall_seconds": float(carry.seconds),
        }

    def stop(records: list[dict]) -> str | None:
        if config.minutes and records[-1]["wall_seconds"] >= 60 * config.minutes:
            return f"the {config.minutes:g}-minute budget is spent"
        return None

    def result(carry: Carry, records: list[dict], info: RunInfo) -> dict:
        best = run.model(carry.best_params)
        test = None if info.interrupted else bpc(best, run.test, config.eval_streams)
        if out:
            eqx.tree_serialise_leaves(os.path.join(out, BEST), carry.best_params)
            if records:
                plot_curves(records, os.path.join(out, "curves.png"), config.cell)
        last = records[-1] if records else {}
        return {
            "config": dataclasses.asdict(config),
            "cell": config.cell,
            "parameters": best.parameters(),
            "windows": info.step,
            "epochs": last.get("epoch"),
            "chars": last.get("chars"),
            "wall_seconds": last.get("wall_seconds"),
            "train_bpc": last.get("train_bpc"),
            "valid_bpc": float(carry.best_valid),
            "test_bpc": test,
            "metric": "test_bpc",
            "value": test,
            "interrupted": info.interrupted,
            "stopped": info.stopped,
        }

    return Job(
        carry=carry0,
        chunk=chunk,
        record=record,
        result=result,
        chunk_steps=config.eval_every,
        label=f"{config.cell} on ptb-char",
        stop=stop,
        restart_fix=f"lower --lr (e.g. {config.lr / 2:.3g}) or --clip",
    )


#: Settings that may differ on resume: how long the run goes, not what it computes.
RESUMABLE = ("windows", "minutes", "checkpoint_every")


def lm(
    config: LMConfig,
    *,
    out: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_changes: Collection[str] = (),
    on_chunk: Callable[[dict], None] | None = None,
) -> dict:
    """Train a character-level language model on Penn Treebank by the standard protocol.

    Args:
        config: the run.
        out: the run directory (``metrics.jsonl``, ``checkpoint.eqx``, ``best.eqx``,
            ``curves.png``, ``result.json``); None keeps nothing.
        resume: continue the run in ``out`` (``windows`` and ``minutes`` may grow).
        overwrite: start afresh in an ``out`` holding another run.
        allow_changes: further settings a resumed run may change (``"lr"``).
        on_chunk: called with each chunk's record.

    Returns:
        A dict: ``parameters``, ``windows``, ``epochs``, ``chars``, ``wall_seconds``,
        ``train_bpc`` (last chunk), ``valid_bpc`` (best), ``test_bpc`` (of the best model on
        the full test text; None when interrupted), ``interrupted``.

    Examples:
        >>> from rtrlx.lm import LMConfig, lm
        >>> r = lm(LMConfig(cell="lstm", hidden=8, batch=4, window=10, windows=2,
        ...                 eval_every=2, eval_streams=512))
        >>> r["windows"], 4.0 < r["test_bpc"] < 6.0
        (2, True)
    """
    return drive(
        config,
        lambda: _job(config, out),
        steps=config.windows,
        out=out,
        resume=resume,
        overwrite=overwrite,
        resumable=RESUMABLE,
        allow_changes=allow_changes,
        checkpoint_every=config.checkpoint_every or config.eval_every,
        on_chunk=on_chunk,
    )


def plot_curves(records: list[dict], path: str, label: str) -> None:
    """Train and validation BPC against wall-clock minutes, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["wall_seconds"] / 60 for r in records]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(minutes, [r["train_bpc"] for r in records], label="train")
    ax.plot(minutes, [r["valid_bpc"] for r in records], label="validation")
    ax.set(xlabel="wall-clock minutes", ylabel="bits per character", title=label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_model(out: str) -> tuple[LMConfig, LMModel]:
    """The config and best model of the run in ``out``.

    Raises:
        FileNotFoundError: naming what is missing and how to make it.
    """
    import json

    path = os.path.join(out, BEST)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{out} holds no trained language model ({BEST} is missing): train one with "
            f"rtrlx lm --out {out}, and let it finish or stop it with Ctrl-C."
        )
    with open(os.path.join(out, "config.json")) as f:
        config = LMConfig(**json.load(f))
    model = build_model(config, jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params = eqx.tree_deserialise_leaves(path, params)
    return config, eqx.combine(params, static)


def sample(
    model: LMModel, prime: str, length: int, key: jax.Array, temperature: float = 1.0
) -> str:
    """Text drawn from the model after reading ``prime``.

    Args:
        model: a trained model.
        prime: the text to read first (characters outside the vocabulary are refused).
        length: characters to draw.
        key: PRNG key of the draws.
        temperature: the logits are divided by it (1: the model's distribution).

    Returns:
        The drawn text (without the prime).
    """
    alphabet, _ = _corpus()
    index = {ch: i for i, ch in enumerate(alphabet)}
    unknown = sorted(set(prime) - set(index))
    if unknown:
        raise ValueError(f"the prime has characters outside the vocabulary: {unknown!r}.")
    if not prime:
        raise ValueError("the prime is empty; give at least one character.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    codes = _draw(model, jnp.asarray([index[c] for c in prime]), length, key, temperature)
    return "".join(alphabet[int(c)] for c in np.asarray(codes))


@eqx.filter_jit
def _draw(
    model: LMModel, prime: jax.Array, length: int, key: jax.Array, temperature: float
) -> jax.Array:
    def read(h, code):
        return model.cell(h, model.inputs(code)), None

    state, _ = lax.scan(read, model.cell.init_state(), prime[:-1])

    def draw(carry, k):
        h, code = carry
        h = model.cell(h, model.inputs(code))
        new = jax.random.categorical(k, model.logits(h) / temperature)
        return (h, new), new

    _, codes = lax.scan(draw, (state, prime[-1]), jax.random.split(key, length))
    return codes
