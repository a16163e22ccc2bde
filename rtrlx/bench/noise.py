"""The noise study of the KF-RTRL and OK papers: how far each approximation is from the truth.

For a cell at trained-like random parameters and a copy-task stream of length T, every
learner's gradient of the summed loss is compared with BPTT's. A stochastic learner is
sampled over many keys (one ``vmap``); the normalised variance is
``E|g - g*|^2 / |g*|^2`` (for a deterministic learner, its squared relative error) and the
cosine is averaged over the samples.
"""

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..cells import CELLS
from ..learners import make
from ..losses import soft_cross_entropy
from ..sequence import sequence_grads
from ..tasks.copy import INPUT_SIZE, OUTPUT_SIZE, copy_stream

#: The learners of the study, as the issue and the papers list them.
DEFAULT_LEARNERS = (
    "uoro",
    "kf_rtrl",
    "ok:1",
    "ok:2",
    "ok:4",
    "ok:8",
    "snap:1",
    "rflo",
    "tbptt:5",
    "tbptt:20",
    "es:10",
)
DEFAULT_CELLS = ("rhn", "gru", "elman")
DEFAULT_LENGTHS = (10, 100, 1000)


def trained_like(cell_name: str, hidden: int, key: jax.Array) -> tuple[Any, Any]:
    """A cell and a head at the scale a trained network reaches: init + N(0, 1/n) noise.

    The ``elman`` cell is the leaky RNN of RFLO (``alpha = 0.5``).
    """
    k_cell, k_head, k_noise = jax.random.split(key, 3)
    kwargs: dict[str, Any] = {"alpha": 0.5} if cell_name == "elman" else {}
    cell_cls: Any = CELLS[cell_name]
    cell = cell_cls(INPUT_SIZE, hidden, key=k_cell, **kwargs)
    head = eqx.nn.Linear(cell.output_size, OUTPUT_SIZE, key=k_head)
    params, static = eqx.partition((cell, head), eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(k_noise, len(leaves))
    scale = 1.0 / math.sqrt(hidden)
    leaves = [
        w + scale * jax.random.normal(k, w.shape, w.dtype)
        for w, k in zip(leaves, keys, strict=True)
    ]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), static)


def _cell_grad(learner, cell, head, xs, ys, key):
    _, (g_cell, _) = sequence_grads(learner, cell, head, soft_cross_entropy, xs, ys, key=key)
    return ravel_pytree(g_cell)[0]


def noise_study(
    cells: Sequence[str] = DEFAULT_CELLS,
    learners: Sequence[str] = DEFAULT_LEARNERS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    *,
    hidden: int = 32,
    samples: int = 100,
    seed: int = 0,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Normalised variance and cosine of each learner's gradient against BPTT's.

    The stream is the copy task's (strings of 1 to 10 bits, shorter when T is too short to
    recall one), scored by :func:`rtrlx.losses.soft_cross_entropy` on the recall steps.

    Args:
        cells: cell names (``rhn``, ``gru``, ``elman`` (leaky, for RFLO), ...).
        learners: learner names; pairs a learner does not support are reported as such.
        lengths: sequence lengths T.
        hidden: units.
        samples: keys per stochastic learner.
        seed: seed of parameters and data.
        on_result: called with each record as it is measured.

    Returns:
        One record per (cell, T, learner), with ``stochastic`` (the learner's own field):
        ``normalised_variance``, ``cosine`` (mean over samples), ``cosine_std``,
        ``samples`` (1 for a deterministic learner), or ``status="unsupported"`` with a
        message.
    """
    from .._errors import UnsupportedCellError

    records = []
    for cell_name in cells:
        if cell_name not in CELLS:
            raise ValueError(f"unknown cell {cell_name!r}; valid cells: {', '.join(CELLS)}.")
        key = jax.random.fold_in(jax.random.key(seed), zlib.crc32(cell_name.encode()))
        cell, head = trained_like(cell_name, hidden, key)
        for steps in lengths:
            # Strings short enough that the first episode is recalled within T.
            longest = max(1, min(10, (steps - 1) // 2))
            xs, ys = copy_stream(jax.random.fold_in(key, steps), steps, max_length=longest)
            exact = eqx.filter_jit(_cell_grad)(make("bptt"), cell, head, xs, ys, key)
            norm2 = jnp.sum(exact**2)
            for name in learners:
                learner = make(name)
                record: dict = {
                    "cell": cell_name,
                    "hidden": hidden,
                    "T": steps,
                    "learner": name,
                    "stochastic": learner.stochastic,
                }
                n = samples if learner.stochastic else 1
                keys = jax.random.split(jax.random.fold_in(key, 7 * steps + 1), n)
                try:
                    run = eqx.filter_jit(
                        jax.vmap(_cell_grad, in_axes=(None, None, None, None, None, 0))
                    )
                    grads = run(learner, cell, head, xs, ys, keys)
                except UnsupportedCellError as err:
                    record.update(status="unsupported", message=str(err).split(". ")[0])
                else:
                    errors = jnp.sum((grads - exact[None, :]) ** 2, axis=1) / norm2
                    cosines = grads @ exact / (jnp.linalg.norm(grads, axis=1) * jnp.sqrt(norm2))
                    record.update(
                        status="ok",
                        samples=n,
                        normalised_variance=float(jnp.mean(errors)),
                        cosine=float(jnp.mean(cosines)),
                        cosine_std=float(jnp.std(cosines)),
                    )
                records.append(record)
                if on_result:
                    on_result(record)
    return records


def learner_colours(records: Sequence[dict]) -> dict[str, Any]:
    """One colour per learner, the same in every panel, in the order the learners appear."""
    import matplotlib

    names = list(dict.fromkeys(r["learner"] for r in records))
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def noise_figure(records: Sequence[dict]) -> Any:
    """The figure of :func:`plot_noise`: variance against T, one panel per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(r["cell"] for r in records))
    colours = learner_colours(records)
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4), squeeze=False)
    for ax, cell in zip(axes[0], cells, strict=True):
        rows = [r for r in records if r["cell"] == cell and r["status"] == "ok"]
        for name in dict.fromkeys(r["learner"] for r in rows):
            mine = [r for r in rows if r["learner"] == name]
            pts = sorted((r["T"], r["normalised_variance"]) for r in mine)
            style = "-o" if mine[0].get("stochastic") else "--s"
            ax.plot(
                [p[0] for p in pts],
                [max(p[1], 1e-12) for p in pts],
                style,
                color=colours[name],
                label=name,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("E|g - g*|² / |g*|²")
        ax.set_title(f"{cell}, n={rows[0]['hidden'] if rows else '?'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_noise(records: Sequence[dict], path: str) -> None:
    """Normalised variance against T, log-log, one panel per cell, written to ``path``.

    A learner has one colour in every panel; stochastic learners are solid lines.
    """
    import matplotlib.pyplot as plt

    fig = noise_figure(records)
    fig.savefig(path, dpi=120)
    plt.close(fig)
