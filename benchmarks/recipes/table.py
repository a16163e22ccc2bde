"""A recipe's runs against steps, as a markdown table beside the published runs.

    .venv/bin/python benchmarks/recipes/table.py ok-copy runs/recipes/ok-copy/*-seed[0-9]*/
    .venv/bin/python benchmarks/recipes/table.py ok-ptb runs/recipes/ok-ptb/*-seed[0-9]*/

The columns are the recipe's headline metric (``T_`` for ok-copy, validation BPC for
ok-ptb) at the published step counts, and for ok-ptb the best validation with the test BPC
taken there. Each run directory is read from its
``metrics.jsonl`` (one record per chunk, the metric on the chunks that measured it), so a
run still going is shown as far as it has got. The last columns are the steps reached, the
wall-clock and the median steps per second over the run's chunks. A run carried from one
session to the next (``carry.py``) names the steps at which its learner state was restarted.
"""

import os
import statistics
import sys

from rtrlx.driver import read_records
from rtrlx.handover import carried_steps
from rtrlx.recipes import Recipe, best_validation, departures, recipe, run_config
from rtrlx.tasks import make

STEPS = {
    "ok-copy": (10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000),
    "ok-ptb": (10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000),
}


def cell(value: float | None, metric: str) -> str:
    """A table entry: T_ as it is (a mean may be fractional), BPC to three places."""
    if value is None:
        return ""
    return f"{value:g}" if metric == "T_" else f"{value:.3f}"


def row(run: str, metric: str, steps: tuple[int, ...], found: Recipe) -> str:
    """One run's markdown row, labelled with how it departs from the recipe."""
    records = read_records(run)
    config = run_config(run, found)
    by_step = {r["step"]: r.get(metric) for r in records}
    cells = [cell(by_step.get(s), metric) for s in steps]
    rate = statistics.median(r["steps_per_second"] for r in records)
    last = records[-1]
    name = f"{config['learner']} seed {config['seed']}" + departures(config, found)
    at = carried_steps(run)  # hand-overs between sessions (carry.py)
    if at:
        name += ", carried at " + ", ".join(f"{s // 1000}k" for s in at)
    if metric == "valid_bpc":
        best = best_validation(records)
        cells.append(f"{best['valid_bpc']:.3f} ({best['test_bpc']:.3f})" if best else "")
    hours = last["wall_seconds"] / 3600
    tail = f" | {last['step']:,} | {hours:.2f} h | {rate:,.0f} |"
    return f"| {name} | " + " | ".join(cells) + tail


def main() -> None:
    """Print the table for the recipe and run directories given."""
    if len(sys.argv) < 2 or sys.argv[1].partition("@")[0] not in STEPS:
        sys.exit(f"usage: table.py {{{','.join(STEPS)}}} RUN_DIR...")
    found = recipe(sys.argv[1])
    metric = make(found.config.task)[0].metric
    steps = STEPS[found.name]
    head = [f"{s // 1000}k" for s in steps]
    head += ["best (test there)"] if metric == "valid_bpc" else []
    print(f"| run | {' | '.join(head)} | steps | wall | steps/s |")
    print("|---" * (len(head) + 4) + "|")
    for label, points in found.reference.items():
        means = {step: mean for step, _low, mean, _high in points}
        cells = [cell(means.get(s), metric) for s in steps] + [""] * (len(head) - len(steps))
        print(f"| {label} (mean) | " + " | ".join(cells) + " | | | |")
    for run in sys.argv[2:]:
        metrics = os.path.join(run, "metrics.jsonl")
        if not os.path.isfile(metrics) or os.path.getsize(metrics) == 0:  # not a run, or new
            continue
        print(row(run, metric, steps, found))


if __name__ == "__main__":
    main()
