"""Does the order of the streams within a training step matter? Forward every step, or serpentine.

    .venv/bin/python benchmarks/stream_order.py --learner rtrl --cell gru --hidden 64

A training step that runs a batch's streams one after another (``streams_step``) touches every
stream's learner state once per step. For exact RTRL on a GRU with n = 64 that is 16 x 3.4 MB,
more than this machine's 32 MB L3, so in the forward order every stream's traces have left the
cache by the time the next step reaches them. The serpentine order (forward on even steps,
backward on odd ones) starts each step with the streams the previous step touched last, which
an LRU-like cache still holds. This script times both orders on the same steps, interleaved,
with the parameters fixed, and prints milliseconds per step (best and median of the calls).
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

import rtrlx
from rtrlx.bench.speed import problem
from rtrlx.learners._base import zeros_grads

STEPS = 8  # steps per timed call (an even number: both directions alike)


def streams(learner, cell, head, batch: int, reverse: bool):
    """One training step's streams in turn, first to last or last to first."""

    def step(state, x, y):
        def one(i, carry):
            b = batch - 1 - i if reverse else i
            state, loss, grads = carry
            mine = jax.tree.map(lambda a: a[b], state)
            mine, loss_b, grads_b = learner.step(cell, head, rtrlx.losses.mse, mine, x[b], y[b])
            state = jax.tree.map(lambda a, v: a.at[b].set(v), state, mine)
            return state, loss + loss_b, jax.tree.map(jnp.add, grads, grads_b)

        start = (state, jnp.zeros(()), zeros_grads(cell, head))
        return lax.fori_loop(0, batch, one, start)

    return step


def timer(learner, cell, head, x, y, serpentine: bool):
    """A function timing :data:`STEPS` steps (seconds), compiled and warmed up."""
    batch = x.shape[0]
    forward = streams(learner, cell, head, batch, reverse=False)
    second = streams(learner, cell, head, batch, reverse=serpentine)

    @functools.partial(jax.jit, donate_argnums=0)
    def advance(carry):
        def body(carry, _):
            state, total = carry
            for step in (forward, second):
                state, loss, grads = step(state, x, y)
                total = jax.tree.map(jnp.add, total, (loss, grads))
            return (state, total), None

        return lax.scan(body, carry, None, length=STEPS // 2)[0]

    state = learner.init(cell, key=jax.random.key(0), batch_size=batch)
    carry = [advance((state, (jnp.zeros(()), zeros_grads(cell, head))))]
    carry[0] = jax.block_until_ready(advance(carry[0]))

    def run() -> float:
        tic = time.perf_counter()
        carry[0] = jax.block_until_ready(advance(carry[0]))
        return time.perf_counter() - tic

    return run


def main() -> None:
    """Command line: the learner, cell, size, batch and repetitions."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--learner", default="rtrl")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--input", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cell, head, xs, ys = problem(
        args.cell, hidden=args.hidden, steps=1, batch=args.batch, input_size=args.input
    )
    learner = rtrlx.learners.make(args.learner)
    x, y = xs[0], ys[0]
    runs = {
        "forward": timer(learner, cell, head, x, y, serpentine=False),
        "serpentine": timer(learner, cell, head, x, y, serpentine=True),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved
        for name, run in runs.items():
            times[name].append(1e3 * run() / STEPS)
    for name, values in times.items():
        print(f"{name}: best {min(values):.3f}, median {statistics.median(values):.3f} ms/step")


if __name__ == "__main__":
    main()
