"""``rtrlx ea``: the (1+1) EA's runtime against n for each mutation-rate policy."""

import argparse
import json
from typing import Any


def add_parser(sub: Any, positive: Any, csv: Any) -> None:
    """Register ``ea`` on the ``rtrlx`` sub-parsers."""
    ea = sub.add_parser(
        "ea",
        help="the (1+1) EA on linear functions with scheduled, adaptive or static mutation rates",
        description="Simulates RUNS runs of the (1+1) EA on OneMax (or --function) for every "
        "--n and --rate "
        "(exactly, skipping to each improving generation; rtrlx.evo) and prints runtime / "
        "(n ln n) with 95%% intervals, beside the paper's limits: beta = 3.5525 for the "
        "optimal schedule, e for 1/n and the adaptive rate (arXiv 1808.05566).",
    )
    ea.add_argument(
        "--n",
        type=lambda t: [positive(v) for v in csv(t)],
        default=[1000, 10000, 100000],
        help="comma-separated numbers of relevant bits (%(default)s)",
    )
    ea.add_argument(
        "--rate",
        type=csv,
        default=["schedule", "adaptive", "static:1/n"],
        help="comma-separated policies: schedule, schedule:A, adaptive, static:P, static:1/n, "
        "and the static laws for an unknown n static:pow:EPS, static:loglog:EPS (%(default)s)",
    )
    ea.add_argument(
        "--function",
        choices=("onemax", "binval", "random"),
        default="onemax",
        help="the linear function: onemax, binval (weights 2^i) or random (weights uniform "
        "in (0, 1]) (onemax)",
    )
    ea.add_argument("--runs", type=positive, default=200, help="runs per n and rate (200)")
    ea.add_argument("--seed", type=int, default=0, help="seed (0)")
    ea.add_argument("--json", metavar="FILE", default=None, help="also write the rows here")
    ea.add_argument("--plot", metavar="FILE.png", default=None, help="also plot them here")


def run_ea(args: argparse.Namespace, check_output: Any, escape: Any, stdout: Any) -> int:
    """The ``rtrlx ea`` command."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .evo import StaticLaw, rates
    from .evo.study import LIMITS, fit, plot_study, study

    err = Console(stderr=True)
    try:
        for rate in args.rate:
            if isinstance(rates.parse(rate, max(args.n)), StaticLaw) and args.function != "onemax":
                raise ValueError(f"--rate {rate} runs on onemax only, not {args.function}.")
        for flag, path in (("--json", args.json), ("--plot", args.plot)):
            if path:
                check_output(path, flag)
    except ValueError as exc:
        err.print(f"[red]rtrlx ea: {escape(exc)}[/red]")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
        total = len(args.rate) * len(args.n)
        task = bar.add_task("rtrlx ea", total=total, info=f"{args.rate[0]}, n={args.n[0]}")
        jobs = [(r, n) for r in args.rate for n in args.n]

        def show(row: dict) -> None:
            done = int(bar.tasks[0].completed) + 1
            following = f"{jobs[done][0]}, n={jobs[done][1]}" if done < total else "done"
            bar.update(task, advance=1, info=f"last: {row['mean']:.3f}; now {following}")

        try:
            rows = study(
                args.n, args.rate, args.runs, seed=args.seed, function=args.function, on_row=show
            )
        except KeyboardInterrupt:
            err.print("rtrlx ea: interrupted; nothing was written.")
            return 130
    title = f"(1+1) EA on {args.function}, {args.runs} runs: runtime / (n ln n)"
    table = Table(title=title)
    for col in ("rate", "n", "mean ± 95%", "median", "finished", "loop steps", "seconds"):
        table.add_column(col, justify="left" if col == "rate" else "right")
    for row in rows:
        mean = "-" if row["mean"] is None else f"{row['mean']:.3f} ± {row['ci95'] or 0:.3f}"
        table.add_row(
            row["rate"],
            f"{row['n']:,}",
            mean,
            "-" if row["median"] is None else f"{row['median']:.3f}",
            f"{row['finished']}/{row['runs']}",
            f"{row['events']:,}",
            f"{row['seconds']:.1f}",
        )
    stdout().print(table)
    fits = {rate: fit([r for r in rows if r["rate"] == rate]) for rate in args.rate}
    for rate, found in fits.items():
        parts = [f"{k} = {v:.3f}" for k, v in found.items() if v is not None]
        label = "grows like (ln n)^gamma" if "gamma" in found else "extrapolated to n -> inf"
        if parts:
            err.print(f"{rate}: {label}: {', '.join(parts)}")
    err.print(
        f"the paper's limits: beta = {LIMITS['schedule']:.4f} (schedule), e = "
        f"{LIMITS['1/n']:.4f} (1/n, adaptive)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "fits": fits, "limits": LIMITS}, f, indent=2)
    if args.plot:
        plot_study(rows, args.plot)
        err.print(f"plot: {args.plot}")
    return 0
