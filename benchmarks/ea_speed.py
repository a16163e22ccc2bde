"""Speed of rtrlx.evo's (1+1) EA against plain NumPy loops of the same algorithm, same run.

Generations simulated per second on OneMax with ``p = 1/n``:

- **NumPy, bit level**: the textbook loop, one uniform per bit per generation (O(n));
- **NumPy, k-chain**: the same chain on the number of zeros, two binomials per generation
  (O(1)), so that a reader sees which part of the speed comes from the skip-ahead and which
  from JAX;
- **rtrlx.evo.simulate**: the k-chain with exact skips to the next improving generation,
  ``--runs`` runs as one ``vmap`` (compiled once beforehand, not timed).

The NumPy loops run whole runs until ``--budget`` seconds are spent; their rates are
generations / second. Medians of ``--repeats``. Writes JSON::

    .venv/bin/python benchmarks/ea_speed.py --n 1000,10000,100000 --out benchmarks/ea_speed.json
"""

import argparse
import json
import math
import time

import jax
import numpy as np

from rtrlx.evo import rates, simulate


def numpy_bits(n: int, budget: float, rng) -> float:
    """Generations per second of the bit-level loop."""
    done, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < budget:
        x = rng.random(n) < 0.5
        ones = int(x.sum())
        while ones < n and time.perf_counter() - tic < budget:
            y = x ^ (rng.random(n) < 1 / n)
            new = int(y.sum())
            if new >= ones:
                x, ones = y, new
            done += 1
    return done / (time.perf_counter() - tic)


def numpy_chain(n: int, budget: float, rng) -> float:
    """Generations per second of the k-chain, one generation at a time."""
    done, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < budget:
        k = rng.binomial(n, 0.5)
        while k > 0 and time.perf_counter() - tic < budget:
            a, b = rng.binomial(k, 1 / n), rng.binomial(n - k, 1 / n)
            if a >= b:
                k += b - a
            done += 1
    return done / (time.perf_counter() - tic)


def rtrlx_rate(n: int, runs: int, seed: int) -> tuple[float, float]:
    """Generations per second of ``simulate`` and its loop steps per second."""
    policy = rates.static(1 / n, name="static:1/n")
    simulate(n, policy, runs, key=jax.random.key(seed + 1000))  # compile
    tic = time.perf_counter()
    result = simulate(n, policy, runs, key=jax.random.key(seed))
    seconds = time.perf_counter() - tic
    return float(result.runtime.sum()) / seconds, result.events / seconds


def main() -> None:
    """Measure and print, and write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1000,10000,100000", help="sizes (1000,10000,100000)")
    parser.add_argument("--runs", type=int, default=200, help="rtrlx runs per timing (200)")
    parser.add_argument("--budget", type=float, default=10.0, help="NumPy seconds per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure (3)")
    parser.add_argument("--out", default=None, help="JSON file")
    args = parser.parse_args()
    rows = []
    for n in (int(v) for v in args.n.split(",")):
        rng = np.random.default_rng(0)
        bits = [numpy_bits(n, args.budget, rng) for _ in range(args.repeats)]
        chain = [numpy_chain(n, args.budget, rng) for _ in range(args.repeats)]
        fast = [rtrlx_rate(n, args.runs, s) for s in range(args.repeats)]
        row = {
            "n": n,
            "numpy_bits_gen_per_s": float(np.median(bits)),
            "numpy_chain_gen_per_s": float(np.median(chain)),
            "rtrlx_gen_per_s": float(np.median([f[0] for f in fast])),
            "rtrlx_loop_steps_per_s": float(np.median([f[1] for f in fast])),
            "spread": {
                "numpy_bits": [min(bits), max(bits)],
                "rtrlx": [min(f[0] for f in fast), max(f[0] for f in fast)],
            },
        }
        row["x_numpy_bits"] = row["rtrlx_gen_per_s"] / row["numpy_bits_gen_per_s"]
        row["x_numpy_chain"] = row["rtrlx_gen_per_s"] / row["numpy_chain_gen_per_s"]
        rows.append(row)
        print(
            f"n={n:>8,}: numpy bits {row['numpy_bits_gen_per_s']:.3g} gen/s, numpy chain "
            f"{row['numpy_chain_gen_per_s']:.3g}, rtrlx {row['rtrlx_gen_per_s']:.3g} "
            f"({row['x_numpy_bits']:,.0f}x bits, {row['x_numpy_chain']:,.0f}x chain; "
            f"e n ln n = {math.e * n * math.log(n):.3g} generations a run)",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
