"""Carry the long recipe runs from one session to the next (rtrlx.handover).

The runs of issue 17 take days here; a session lasts hours and keeps only what is committed.
A checkpoint is mostly the learner's traces (34 MB for OK(16) on the copy curriculum), so
each run is carried without them: ``save`` exports every run under ``runs/recipes`` to
``benchmarks/recipes/carried`` (config, metrics, and the compressed checkpoint with each
stream's learner state restarted); ``load`` sets up the run directories of a fresh checkout
from it, and ``queue.sh`` resumes them. ``save`` refuses to replace a carried run with a local
one that is behind it (that would lose steps), and ``load`` says when a local run it leaves
alone is behind its carried copy. Each hand-over's step is in the run's
``carried.json``.

    .venv/bin/python benchmarks/recipes/carry.py save   # before a session ends; then commit
    .venv/bin/python benchmarks/recipes/carry.py load   # queue.sh does this first
"""

import argparse
import glob
import os
import re
import sys

from rtrlx.driver import RunError, saved_step
from rtrlx.handover import carried_steps, export_run, import_run

RUNS = "runs/recipes"
CARRIED = "benchmarks/recipes/carried"
_SEEDED = re.compile(r"-seed[0-9]+$")


def _run_dirs(root: str) -> list[str]:
    """Every ``root/RECIPE/NAME-seedK`` directory, whatever K (not the runs' ``.json`` logs)."""
    found = glob.glob(f"{root}/*/*-seed*")
    return sorted(d for d in found if _SEEDED.search(d) and os.path.isdir(d))


def main() -> None:
    """Save or load every carried run; a run that fails is named, and the others go on."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("save", "load"))
    args = parser.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    failed = []
    if args.action == "save":
        pairs = [
            (run, os.path.join(CARRIED, os.path.relpath(run, RUNS)))
            for run in _run_dirs(RUNS)
            if os.path.exists(os.path.join(run, "checkpoint.eqx"))
        ]
        move = export_run
    else:
        pairs = []
        for kept in _run_dirs(CARRIED):
            out = os.path.join(RUNS, os.path.relpath(kept, CARRIED))
            if os.path.exists(os.path.join(out, "checkpoint.eqx")):
                print(f"{out}: has its own checkpoint, left as it is")
                ahead = carried_steps(kept)[-1] - saved_step(out)
                if ahead > 0:  # say so: the next save would refuse to go back to it
                    print(
                        f"  WARNING: the carried copy is {ahead} steps further; remove {out} "
                        "and load again to go on from it"
                    )
            else:
                pairs.append((kept, out))
        move = import_run
    for src, dest in pairs:
        try:
            print(f"{src} -> {dest}: step {move(src, dest)}")
        except (RunError, ValueError) as exc:
            print(f"{src} -> {dest}: FAILED: {exc}")
            failed.append(src)
    if failed:
        sys.exit(f"{len(failed)} run(s) not carried: {', '.join(failed)}")


if __name__ == "__main__":
    main()
