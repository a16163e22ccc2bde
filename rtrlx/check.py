"""``rtrlx check``: every learner against BPTT on every cell, in float64.

For each (learner, cell) pair: the relative error and cosine of the learner's gradient
against BPTT's on the same random parameters and sequence, and its time per step. A learner
that claims exactness on a cell and misses the tolerance fails the check.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._errors import UnsupportedCellError
from .cells import CELLS
from .learners import make
from .losses import mse
from .sequence import sequence_grads

#: Relative error below which a learner that claims exactness passes.
EXACT_RTOL = 1e-6
DEFAULT_LEARNERS = (
    "bptt",
    "rtrl",
    "diag_rtrl",
    "snap:1",
    "snap:2",
    "tbptt:5",
    "tbptt:20",
    "uoro",
    "kf_rtrl",
    "ok:4",
    "rflo",
)
DEFAULT_CELLS = tuple(CELLS)


def _perturbed(module: Any, key: jax.Array, scale: float = 0.3) -> Any:
    leaves, treedef = jax.tree.flatten(module)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            a + scale * jax.random.normal(k, a.shape, a.dtype) if eqx.is_inexact_array(a) else a
            for a, k in zip(leaves, keys, strict=True)
        ],
    )


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def claims_exact(learner: Any, cell: Any, steps: int) -> bool:
    """Whether the learner claims the exact gradient on ``cell`` over ``steps`` steps.

    The learner says so itself (:meth:`rtrlx.learners.Learner.exact_for`: ``tbptt(k)`` does
    when k >= T).
    """
    return bool(learner.exact_for(cell, steps))


def run_check(
    learners: Sequence[str] = DEFAULT_LEARNERS,
    cells: Sequence[str] = DEFAULT_CELLS,
    *,
    hidden: int = 8,
    input_size: int = 3,
    steps: int = 20,
    batch: int = 4,
    seed: int = 0,
    repeats: int = 3,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Compare each learner's gradient with BPTT's on each cell.

    Needs float64 (``jax.config.update("jax_enable_x64", True)``) for the exactness
    tolerance to mean anything.

    Args:
        learners: learner names, as :func:`rtrlx.learners.make` reads them.
        cells: cell names, keys of :data:`rtrlx.cells.CELLS`.
        hidden: units per cell.
        input_size: input features.
        steps: sequence length T.
        batch: batch size.
        seed: seed of parameters and data.
        repeats: timing repetitions (the median is reported).
        on_result: called with each record as it is measured.

    Returns:
        One record per pair: ``learner``, ``cell``, ``status`` (``"exact"``, ``"approx"``,
        ``"FAIL"`` or ``"unsupported"``), ``claims_exact``, ``rel_error``, ``cosine``,
        ``ms_per_step`` and ``message``.
    """
    for name in cells:
        if name not in CELLS:
            raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}.")
    built = {name: make(name) for name in learners}
    records = []
    key = jax.random.key(seed)
    for cell_name in cells:
        k = jax.random.split(jax.random.fold_in(key, len(cell_name)), 5)
        cell_cls: Any = CELLS[cell_name]
        cell = _perturbed(cell_cls(input_size, hidden, key=k[0]), k[1])
        head = _perturbed(eqx.nn.Linear(cell.output_size, 2, key=k[2]), k[3])
        xs = jax.random.normal(k[4], (steps, batch, input_size))
        ys = jax.random.normal(jax.random.fold_in(k[4], 1), (steps, batch, 2))
        grads = eqx.filter_jit(sequence_grads)
        _, ref = grads(built.get("bptt") or make("bptt"), cell, head, mse, xs, ys)
        ref_flat = ravel_pytree(ref)[0]
        for learner_name, learner in built.items():
            record: dict = {"learner": learner_name, "cell": cell_name, "message": ""}
            try:
                _, g = grads(learner, cell, head, mse, xs, ys, key=k[4])
            except UnsupportedCellError as err:
                record.update(
                    status="unsupported",
                    claims_exact=False,
                    rel_error=None,
                    cosine=None,
                    ms_per_step=None,
                    message=str(err).split(". ")[0],
                )
                records.append(record)
                if on_result:
                    on_result(record)
                continue
            g_flat = ravel_pytree(g)[0]
            rel = float(jnp.linalg.norm(g_flat - ref_flat) / jnp.linalg.norm(ref_flat))
            cos = float(g_flat @ ref_flat / (jnp.linalg.norm(g_flat) * jnp.linalg.norm(ref_flat)))
            seconds = _timed(
                lambda f=grads, lr=learner, c=cell, h=head, x=xs, y=ys: f(lr, c, h, mse, x, y),
                repeats,
            )
            claims = claims_exact(learner, cell, steps)
            status = ("exact" if rel < EXACT_RTOL else "FAIL") if claims else "approx"
            record.update(
                status=status,
                claims_exact=claims,
                rel_error=rel,
                cosine=cos,
                ms_per_step=1e3 * seconds / steps,
            )
            if status == "FAIL":
                record["message"] = f"claims exactness but rel. error {rel:.2e} > {EXACT_RTOL:g}"
            records.append(record)
            if on_result:
                on_result(record)
    return records
