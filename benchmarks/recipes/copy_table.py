"""T_ against steps for the ok-copy recipe's runs, as a markdown table beside the published runs.

    .venv/bin/python benchmarks/recipes/copy_table.py runs/recipes/ok-copy/*-seed[0-9]

Each run directory is read from its ``metrics.jsonl`` (one record per chunk), so a run still
going is shown as far as it has got. The last columns are the steps reached, the wall-clock
and the median steps per second over the run's chunks.
"""

import json
import os
import statistics
import sys

from rtrlx.recipes import RECIPES

STEPS = (10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000)


def row(run: str) -> str:
    """One run's markdown row."""
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    by_step = {r["step"]: r for r in records}
    cells = [f"{by_step[s]['T_']:.0f}" if s in by_step else "" for s in STEPS]
    rate = statistics.median(r["steps_per_second"] for r in records)
    last = records[-1]
    name = f"{config['learner']} seed {config['seed']}"
    hours = last["wall_seconds"] / 3600
    tail = f" | {last['step']:,} | {hours:.2f} h | {rate:,.0f} |"
    return f"| {name} | " + " | ".join(cells) + tail


def main() -> None:
    """Print the table for the run directories given."""
    head = " | ".join(f"{s // 1000}k" for s in STEPS)
    print(f"| run | {head} | steps | wall | steps/s |")
    print("|---" * (len(STEPS) + 4) + "|")
    for label, points in RECIPES["ok-copy"]().reference.items():
        means = {step: mean for step, _low, mean, _high in points}
        cells = [f"{means[s]:g}" if s in means else "" for s in STEPS]
        print(f"| {label} (mean) | " + " | ".join(cells) + " | | | |")
    for run in sys.argv[1:]:
        metrics = os.path.join(run, "metrics.jsonl")
        if not os.path.isfile(metrics) or os.path.getsize(metrics) == 0:  # not a run, or new
            continue
        print(row(run))


if __name__ == "__main__":
    main()
