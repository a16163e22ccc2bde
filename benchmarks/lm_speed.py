r"""Training speed of the LM cells at equal parameters, in one run, with their FLOP ratio.

Each round times a few training windows (forward, backward, clipped Adam) of every cell,
sized to the same parameter count, in a fresh process each, alternating the order between
rounds; XLA's FLOP count of the compiled window gives the arithmetic each one does (XLA
counts a scan's body once, so the figure is the FLOPs of one time step of the forward and
the backward pass of the batch, which is what the cells' ratio needs)::

    .venv/bin/python benchmarks/lm_speed.py --params 1000000 --rounds 3 \\
        --json benchmarks/lm_speed.json
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

CELLS = ["fs-lstm:2", "fs-lstm:4", "stacked-lstm:2", "lstm", "rhn"]


def one(cell: str, params: int, batch: int, window: int) -> dict:
    """Seconds per window (median of 5 after a warm-up) and XLA's FLOPs per time step."""
    import jax

    from rtrlx.lm import LMConfig, _build, _windows, hidden_for, parameters

    config = hidden_for(LMConfig(cell=cell, batch=batch, window=window), params)
    run, carry = _build(config)
    windows = _windows(run)
    carry, _ = windows(carry, 1)
    jax.block_until_ready(carry)
    times = []
    for _ in range(5):
        tic = time.perf_counter()
        carry, _ = windows(carry, 1)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - tic)
    import equinox as eqx

    arrays, static = eqx.partition(carry, eqx.is_array)
    lowered = jax.jit(lambda a: windows(eqx.combine(a, static), 1)).lower(arrays)
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {
        "cell": cell,
        "hidden": config.hidden,
        "slow": config.slow_size,
        "parameters": parameters(config),
        "seconds_per_window": statistics.median(times),
        "chars_per_second": batch * window / statistics.median(times),
        "flops_per_step": float(cost.get("flops", float("nan"))),
    }


def main() -> None:
    """Command line: ``--params``, ``--rounds``, ``--json``; ``--one`` runs in a child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.params, args.batch, args.window)))
        return
    rounds = []
    for r in range(args.rounds):
        order = CELLS if r % 2 == 0 else CELLS[::-1]
        got = {}
        for cell in order:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    cell,
                    "--params",
                    str(args.params),
                    "--batch",
                    str(args.batch),
                    "--window",
                    str(args.window),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            got[cell] = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"round {r + 1}: {cell} {got[cell]['chars_per_second']:.0f} chars/s",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(got)
    summary = {}
    for cell in CELLS:
        speeds = [run[cell]["chars_per_second"] for run in rounds]
        summary[cell] = {
            **{k: rounds[0][cell][k] for k in ("hidden", "slow", "parameters", "flops_per_step")},
            "chars_per_second": statistics.median(speeds),
            "spread": (max(speeds) - min(speeds)) / statistics.median(speeds),
        }
    base = summary["stacked-lstm:2"]
    for cell, row in summary.items():
        row["speed_vs_stacked"] = row["chars_per_second"] / base["chars_per_second"]
        row["flops_vs_stacked"] = row["flops_per_step"] / base["flops_per_step"]
        print(
            f"{cell:15s} {row['parameters']:>9,} params  {row['chars_per_second']:7.0f} chars/s "
            f"({row['spread']:.0%})  speed/stacked {row['speed_vs_stacked']:.2f}  "
            f"FLOPs/stacked {row['flops_vs_stacked']:.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rounds, "summary": summary, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
