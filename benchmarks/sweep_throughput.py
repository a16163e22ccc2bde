r"""Throughput of ``rtrlx sweep``: its parallel trials against the same runs one after another.

Runs one spec three ways on this machine, one after another in this one run:

- ``sweep``: ``rtrlx sweep SPEC`` on a new local Ray instance (as many trials at once as
  cores, one XLA thread each);
- ``sweep, one at a time``: the same with ``--concurrent 1 --cpus-per-trial <cores>``
  (each trial may use every core, as a lone run does);
- ``loop``: the same runs as plain ``rtrlx train`` processes, one after another, no Ray.

and reports trials per hour of each, the ratios, and whether the three agree on each trial's
metric. Usage (about 15 minutes for the example spec on 2 cores)::

    .venv/bin/python benchmarks/sweep_throughput.py examples/sweep-copy-lr.toml \
        --out /tmp/sweep-bench --json benchmarks/sweep_throughput.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from rtrlx.sweep import load, plan, trial_argv


def _sweep(spec: str, out: str, *flags: str) -> tuple[float, dict]:
    tic = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rtrlx.cli", "sweep", spec, "--out", out, *flags],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - tic
    with open(os.path.join(out, "results.json")) as f:
        return seconds, json.load(f)


def _loop(spec_path: str, out: str) -> tuple[float, list]:
    the_plan = plan(load(spec_path))
    values = []
    tic = time.perf_counter()
    for i, point in enumerate(the_plan.points):
        run_dir = os.path.join(out, f"t{i:03d}")
        argv = trial_argv(the_plan.spec, point, run_dir)
        done = subprocess.run(
            [sys.executable, "-m", "rtrlx.cli", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if done.returncode != 0:  # a divergence: the sweep records it as a failed trial
            values.append(None)
            continue
        with open(os.path.join(run_dir, "result.json")) as f:
            values.append(json.load(f)["value"])
    return time.perf_counter() - tic, values


def main() -> None:
    """Run the three ways and print (and save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--out", default="/tmp/sweep-bench")
    parser.add_argument("--json")
    parser.add_argument(
        "--modes",
        default="sweep,serial,loop",
        help="which ways to run: sweep, serial (the sweep one at a time), loop",
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    shutil.rmtree(args.out, ignore_errors=True)
    cores = len(os.sched_getaffinity(0))
    n = len(plan(load(args.spec)).points)
    rows = {}
    if "sweep" in modes:
        seconds, report = _sweep(args.spec, os.path.join(args.out, "parallel"))
        rows["sweep"] = {
            "seconds": seconds,
            "concurrent": report["concurrent"],
            "values": [t["value"] for t in report["trials"]],
            "table": report["table"],
        }
    if "serial" in modes:
        seconds, report = _sweep(
            args.spec,
            os.path.join(args.out, "serial"),
            "--concurrent",
            "1",
            "--cpus-per-trial",
            str(cores),
        )
        rows["sweep, one at a time"] = {
            "seconds": seconds,
            "concurrent": 1,
            "values": [t["value"] for t in report["trials"]],
        }
    seconds, values = _loop(args.spec, os.path.join(args.out, "loop"))
    rows["loop"] = {"seconds": seconds, "concurrent": 1, "values": values}
    for row in rows.values():
        row["trials_per_hour"] = n / row["seconds"] * 3600
        row["speedup_vs_loop"] = rows["loop"]["seconds"] / row["seconds"]
    agree = {
        name: sum(a == b for a, b in zip(row["values"], values, strict=True))
        for name, row in rows.items()
    }
    print(f"{n} trials of {args.spec} on {cores} cores")
    for name, row in rows.items():
        print(
            f"  {name:22s} {row['seconds']:7.0f} s  {row['trials_per_hour']:7.0f} trials/h  "
            f"x{row['speedup_vs_loop']:.2f} the loop  metric equal to the loop's in "
            f"{agree[name]}/{n}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "spec": args.spec,
                    "trials": n,
                    "cores": cores,
                    "rows": rows,
                    "agree_with_loop": agree,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
