r"""How fast do OK's two skinny reduction products run, and does their shape help?

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 1 \
        .venv/bin/python benchmarks/ok_reduction_shapes.py --rounds 3

OK(16) on the copy curriculum's RHN 128 reduces ``r + 1 = 17`` Kronecker terms to 16 at every
step of every stream (:func:`rtrlx.learners.ok.ok_reduce`). The large side of the terms is a
``(17, L)`` matrix, ``L = 32,768``, and it meets two products: its Gram matrix
``flat @ flat.T`` (17 x 17 out, 19 MFLOP) and the recombination ``coef.T @ flat`` (16 x L out,
18 MFLOP). Both have an inner or outer dimension of 17, which Eigen's kernels tile badly.
Beside them, the step's propagation of the 16 kept terms, ``(4096, 128) @ (128, 128)``
(134 MFLOP), for scale.

This script times both products, for 16 streams in turn as the training step runs them, in
their current shape and in the shapes one might try instead: the terms padded to 24 or 32
rows (the padding's copy included, as it would be in the step), the long side split into
blocks that fit in L2, and the terms stored last (``L x 17``). Beside them: the square 2048
matmul rate on the same core. It prints milliseconds per stream and GFLOP/s, the median of
``--rounds``.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

TERMS, RANK, LONG, STREAMS = 17, 16, 32_768, 16


def pad(x: jax.Array, rows: int) -> jax.Array:
    """``x`` with zero rows appended up to ``rows``."""
    return jnp.concatenate([x, jnp.zeros((rows - x.shape[0], x.shape[1]), x.dtype)])


def variants() -> dict[str, tuple[Callable, int]]:
    """Each way of computing a product, with its FLOPs.

    A variant takes ``flat`` (17, L), the same terms stored last ``flat_t`` (L, 17), the
    recombination's coefficients ``coef`` (17, 16) and the state Jacobian ``jac`` (128, 128),
    and uses one of the two layouts.
    """
    gram, comb = 2 * TERMS * TERMS * LONG, 2 * RANK * TERMS * LONG
    side = 128  # the RHN's n: the propagation multiplies each kept term's rows by J_h^T

    def blocks(f):  # (blocks, 17, L / blocks): each block 278 KB
        return f.reshape(TERMS, 8, LONG // 8).transpose(1, 0, 2)

    return {
        "propagation (for scale)": (
            lambda f, ft, c, j: f[:RANK].reshape(-1, side) @ j.T,
            2 * RANK * LONG * side,
        ),
        "gram, as now (17 x L)": (lambda f, ft, c, j: f @ f.T, gram),
        "gram, padded to 24": (lambda f, ft, c, j: pad(f, 24) @ pad(f, 24).T, gram),
        "gram, padded to 32": (lambda f, ft, c, j: pad(f, 32) @ pad(f, 32).T, gram),
        "gram, 8 blocks of L": (
            lambda f, ft, c, j: jnp.einsum("bil,bjl->ij", blocks(f), blocks(f)),
            gram,
        ),
        "gram, terms last (L x 17)": (lambda f, ft, c, j: ft.T @ ft, gram),
        "combine, as now": (lambda f, ft, c, j: c.T @ f, comb),
        "combine, padded to 24": (lambda f, ft, c, j: pad(c, 24).T @ pad(f, 24), comb),
        "combine, 8 blocks of L": (
            lambda f, ft, c, j: jnp.einsum("ik,bil->kbl", c, blocks(f)).reshape(RANK, LONG),
            comb,
        ),
        "combine, terms last": (lambda f, ft, c, j: ft @ c, comb),
    }


def timer(product: Callable, flat: jax.Array, coef: jax.Array) -> Callable[[], float]:
    """Seconds per stream of ``product`` over the 16 streams in turn (compiled, warmed up)."""
    flat_t = jnp.swapaxes(flat, 1, 2)
    jac = coef[0, 0, 0] * jnp.eye(128) + 0.01

    @jax.jit
    def run(flat, flat_t, coef):
        def one(i, total):
            return total + jnp.sum(product(flat[i], flat_t[i], coef[i], jac))

        return lax.fori_loop(0, STREAMS, one, jnp.zeros((), flat.dtype))

    run(flat, flat_t, coef).block_until_ready()

    def once() -> float:
        start = time.perf_counter()
        for _ in range(20):
            out = run(flat, flat_t, coef)
        out.block_until_ready()
        return (time.perf_counter() - start) / (20 * STREAMS)

    return once


def matmul_rate() -> float:
    """GFLOP/s of a 2048-square float32 matmul on this process's cores (median of 5)."""
    a = jax.random.normal(jax.random.key(1), (2048, 2048))
    square = jax.jit(lambda a: a @ a)
    square(a).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        square(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * 2048**3 / statistics.median(times) / 1e9


def main() -> None:
    """Time every variant ``--rounds`` times, alternating, and print the medians."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    k1, k2 = jax.random.split(jax.random.key(0))
    flat = jax.random.normal(k1, (STREAMS, TERMS, LONG))
    coef = jax.random.normal(k2, (STREAMS, TERMS, RANK))
    timers = {name: (timer(f, flat, coef), flops) for name, (f, flops) in variants().items()}
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, (once, _) in timers.items():
            times[name].append(min(once() for _ in range(3)))
    print(f"square matmul 2048: {matmul_rate():.0f} GFLOP/s")
    for name, (_, flops) in timers.items():
        t = statistics.median(times[name])
        spread = (max(times[name]) - min(times[name])) / t
        rate = flops / t / 1e9
        print(f"{name:28s} {t * 1e3:7.3f} ms/stream ({spread:4.0%})  {rate:5.1f} GFLOP/s")


if __name__ == "__main__":
    main()
