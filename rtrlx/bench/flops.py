"""Floating-point work of exact RTRL, and the machine's practical limit to compare it with.

Exact RTRL's cost is the influence update ``M_t = J_h M_{t-1} + J_θ``: a dense
``(S n x S n) @ (S n x P)`` matmul and an add, per stream and step. :func:`influence_flops`
counts it by hand; :func:`xla_flops` asks XLA how many floating-point operations the
compiled step of a learner performs in all; :func:`matmul_rate` measures the FLOP rate of a
large matmul on this machine, the rate a well-implemented RTRL step should approach.
"""

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..cells._base import AbstractCell, num_components
from ..learners import make
from ..losses import mse


def influence_flops(cell: AbstractCell, batch: int = 1) -> int:
    """Floating-point operations of one influence update of exact RTRL, counted by hand.

    ``J_h M`` multiplies an ``(S n x S n)`` matrix by an ``(S n x P)`` one: ``2 (S n)^2 P``
    operations (a multiply and an add per term); adding ``J_θ`` is ``S n P`` more.

    Args:
        cell: an rtrlx cell (``n`` units, ``S`` state components per unit, ``P`` parameters).
        batch: streams.

    Returns:
        ``batch * (2 (S n)^2 P + S n P)``.

    Examples:
        >>> import jax, rtrlx
        >>> cell = rtrlx.cells.Elman(2, 3, key=jax.random.key(0))  # P = 3 * 5 + 3 = 18
        >>> influence_flops(cell)  # 2 * 9 * 18 + 3 * 18
        378
    """
    rows = num_components(cell) * cell.hidden_size
    params = sum(a.size for a in jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array)))
    return batch * (2 * rows * rows * params + rows * params)


def xla_flops(learner: str, cell: AbstractCell, head: Any, batch: int) -> float:
    """Floating-point operations XLA counts in one compiled ``learner.step`` on a batch.

    Args:
        learner: learner name, e.g. ``"rtrl"``.
        cell: the cell.
        head: the readout.
        batch: streams.

    Returns:
        XLA's ``flops`` from the compiled step's cost analysis.
    """
    built = make(learner)
    state = built.init(cell, key=jax.random.key(0), batch_size=batch)
    dtype = jax.tree.leaves(eqx.filter(cell, eqx.is_inexact_array))[0].real.dtype
    x = jnp.zeros((batch, cell.input_size), dtype)
    y = jnp.zeros((batch, head.out_features), dtype)
    step = jax.jit(lambda c, h, s, x, y: built.step(c, h, mse, s, x, y))
    analysis = step.lower(cell, head, state, x, y).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0]
    if not analysis or "flops" not in analysis:  # pragma: no cover - CPU and GPU report it
        raise RuntimeError("this JAX backend reports no FLOP count")
    return float(analysis["flops"])


def matmul_rate(
    size: int = 2048, repeats: int = 5, dtype: Any = None, shape: tuple[int, ...] | None = None
) -> float:
    """FLOP rate (per second) of a matmul: by default ``size x size``, the machine's limit.

    Median over ``repeats`` timed runs after a warm-up, in the default float dtype.

    Args:
        size: the square matmul's side.
        repeats: timed runs.
        dtype: the float dtype (default: JAX's default float).
        shape: ``(batch, m, k, n)`` instead: a batch of ``(m x k) @ (k x n)`` products, the
            shape of exact RTRL's influence update (``m = k = S n``, ``n = P``).
    """
    dtype = dtype or jnp.zeros(()).dtype
    batch, m, k, n = shape or (1, size, size, size)
    a = jax.random.normal(jax.random.key(0), (batch, m, k), dtype)
    b = jax.random.normal(jax.random.key(1), (batch, k, n), dtype)
    run = jax.jit(jnp.matmul)
    jax.block_until_ready(run(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(a, b))
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * batch * m * k * n / times[len(times) // 2]
