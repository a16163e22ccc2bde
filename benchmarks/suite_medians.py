"""Medians over several runs of ``rtrlx bench --suite default`` (the machine is shared).

Usage: python benchmarks/suite_medians.py OUT.json RUN1.json RUN2.json ...

Writes, per (case, learner, hidden), the median ms/step and the median of the per-run
ratios to BPTT, and per target the median value and whether that median meets it.
"""

import json
import statistics
import sys


def main(out: str, runs: list[str]) -> None:
    """Read the runs, take medians, write ``out`` and print a summary."""
    reports = [json.load(open(path)) for path in runs]
    rows: dict[tuple, dict] = {}
    targets: dict[tuple, dict] = {}
    for report in reports:
        for case in report["cases"]:
            base = {
                r["hidden"]: r["seconds_per_step"]
                for r in case["results"]
                if r["learner"] == "bptt"
            }
            for r in case["results"]:
                key = (case["case"], r["learner"], r["hidden"])
                row = rows.setdefault(key, {"ms": [], "ratio": [], "by_stream": r["by_stream"]})
                row["ms"].append(1e3 * r["seconds_per_step"])
                row["ratio"].append(r["seconds_per_step"] / base[r["hidden"]])
            for t in case["targets"]:
                entry = targets.setdefault((case["case"], t["target"]), {"values": [], "met": []})
                entry["values"].append(t["value"])
                entry["met"].append(t["met"])
    summary = {
        "runs": runs,
        "results": [
            {
                "case": c,
                "learner": lr,
                "hidden": h,
                "by_stream": v["by_stream"],
                "ms_per_step": statistics.median(v["ms"]),
                "vs_bptt": statistics.median(v["ratio"]),
                "ms_per_step_runs": v["ms"],
            }
            for (c, lr, h), v in rows.items()
        ],
        "targets": [
            {
                "case": c,
                "target": t,
                "median": statistics.median(v["values"]),
                "values": v["values"],
                "met_in_runs": sum(v["met"]),
                "runs": len(v["met"]),
            }
            for (c, t), v in targets.items()
        ],
    }
    with open(out, "w") as fh:
        json.dump(summary, fh, indent=2)
    for r in summary["results"]:
        print(
            f"{r['case']:12s} {r['learner']:26s} {r['hidden']:4d} {r['ms_per_step']:10.4g} ms"
            f" {r['vs_bptt']:8.3g}x  runs {' '.join(f'{m:.4g}' for m in r['ms_per_step_runs'])}"
        )
    for t in summary["targets"]:
        print(
            f"{t['case']:12s} {t['median']:10.4g}  met {t['met_in_runs']}/{t['runs']}",
            t["target"],
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
