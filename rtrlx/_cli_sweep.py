"""``rtrlx sweep``: a spec file or flags, Ray Tune underneath, a table and files at the end."""

import argparse
import contextlib
import io
import os
from typing import Any

EXAMPLE = """examples:
  rtrlx sweep sweeps/copy-lr.toml --out runs/sweep-lr
  rtrlx sweep --command train --set task=copy-curriculum --set steps=5000 \\
      --grid learner=rtrl,uoro --grid lr=1e-3,3e-3,1e-2 --seeds 3 --out runs/sweep
  rtrlx sweep --command train --grid learner=kf_rtrl --random lr=loguniform:1e-4:1e-2 \\
      --samples 8 --seeds 2 --asha 2000 --out runs/sweep-asha
  rtrlx sweep --resume --out runs/sweep                       # goes on; finished trials kept
  rtrlx sweep sweeps/copy-lr.toml --address 10.0.0.1:6379     # on a running Ray cluster"""


def add_parser(sub: Any, positive: Any) -> None:
    """Register ``sweep`` on the ``rtrlx`` sub-parsers."""
    p = sub.add_parser(
        "sweep",
        help="run a command over a grid of learners, cells, hyperparameters and seeds on Ray",
        description="Each point of the sweep is one run of `rtrlx train`, `rl` or `lm` (a Ray\n"
        "Tune trial with its own run directory, OUT/runs/tNNN), reporting its metric as it\n"
        "goes. Without --address (or RAY_ADDRESS) a local Ray instance runs as many trials\n"
        "at once as the machine has cores, one XLA thread each. Writes OUT/results.json,\n"
        "OUT/results.csv and a plot of the metric against the swept axis per learner.\n"
        "Needs the rtrlx[sweep] extra: pip install 'rtrlx[sweep]'.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", nargs="?", help="the sweep's TOML or YAML file (flags add to it)")
    p.add_argument(
        "--command",
        dest="sweep_command",
        choices=("train", "rl", "lm"),
        help="the command to sweep",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a flag every trial gets (repeatable), e.g. --set steps=5000",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a grid axis (repeatable), e.g. --grid learner=rtrl,uoro",
    )
    p.add_argument(
        "--random",
        action="append",
        default=[],
        metavar="NAME=DIST:A:B",
        help="a random axis (repeatable): loguniform:LOW:HIGH, uniform:LOW:HIGH, "
        "randint:LOW:HIGH or choice:V1:V2:...",
    )
    p.add_argument("--samples", type=positive, help="draws of the random axes (1)")
    p.add_argument(
        "--seeds", type=positive, help="seeds 0..N-1 as a grid axis (the table averages over them)"
    )
    p.add_argument("--metric", help="the metric to rank (the command's headline metric)")
    p.add_argument("--mode", choices=("max", "min"), help="the metric's better direction")
    p.add_argument(
        "--asha",
        metavar="GRACE[:REDUCTION]",
        help="stop weak trials early with ASHA: first rung at GRACE steps, keep "
        "1/REDUCTION (3) at each rung",
    )
    p.add_argument("--out", default="runs/sweep", help="the sweep's directory (%(default)s)")
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="a running Ray cluster's address (RAY_ADDRESS; none: local Ray)",
    )
    p.add_argument(
        "--concurrent",
        type=positive,
        help="trials at once (default: the local cores / --cpus-per-trial)",
    )
    p.add_argument(
        "--cpus-per-trial",
        type=positive,
        default=1,
        help="CPUs per trial (%(default)s: one XLA thread each)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the sweep in --out (finished trials are not rerun)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds another sweep (deletes it)",
    )


def build_spec(args: argparse.Namespace) -> Any:
    """The spec of a file and the flags (flags win), or None for a bare ``--resume``.

    Raises:
        ValueError: a malformed flag or spec (``SpecError``), naming it and the fix.
    """
    from .sweep import from_dict, load, parse_value

    data: dict[str, Any] = load(args.spec).as_dict() if args.spec else {}
    flags = any(
        (
            args.sweep_command,
            args.set,
            args.grid,
            args.random,
            args.seeds,
            args.samples,
            args.metric,
            args.mode,
            args.asha,
        )
    )
    if not args.spec and not flags:
        if args.resume:
            return None
        raise ValueError("give a spec file or --command with axes (rtrlx sweep -h shows how).")
    for key in ("args", "grid", "random"):
        data[key] = dict(data.get(key) or {})
    if args.sweep_command:
        data["command"] = args.sweep_command
    for item in args.set:
        name, value = _pair(item, "--set")
        _put(data, "args", name, parse_value(value))
    for item in args.grid:
        name, values = _pair(item, "--grid")
        _put(data, "grid", name, [parse_value(v) for v in values.split(",") if v.strip()])
    for item in args.random:
        name, text = _pair(item, "--random")
        kind, *params = text.split(":")
        _put(data, "random", name, {kind: [parse_value(v) for v in params]})
    if args.seeds:
        _put(data, "grid", "seed", list(range(args.seeds)))
    for key in ("samples", "metric", "mode"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.asha:
        grace, _, reduction = args.asha.partition(":")
        data["asha"] = {"grace": parse_value(grace), "reduction": parse_value(reduction or "3")}
    return from_dict(data)


def check_trial(argv: list[str]) -> None:
    """Refuse a trial's command line the command would refuse, before any trial starts.

    Raises:
        ValueError: the command's own message for the first bad trial.
    """
    from .cli import _config, _rl_config, build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        raise ValueError(
            f"a trial's flags are not valid for rtrlx {argv[0]}: {message[-1] if message else ''}"
        ) from None
    if args.command == "train":
        _config(args, args.learner).validate()
    elif args.command == "rl":
        _rl_config(args).validate()
    else:
        from ._cli_lm import _configs

        _configs(args)


def run_sweep(args: argparse.Namespace, check_output: Any, escape: Any, stdout: Any) -> int:
    """``rtrlx sweep``: check, run with a progress bar, print the table and where files are."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = Console(stderr=True)
    try:
        check_output(args.out, "--out", directory=True)
        spec = build_spec(args)
        from .sweep import plan, sweep

        total = len(plan(spec).points) if spec is not None else None
    except (ValueError, ImportError) as exc:
        err.print(f"[red]rtrlx sweep: {escape(exc)}[/red]")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
        task = bar.add_task("trials", total=total, info="starting Ray")

        def on_event(kind: str, index: int, metrics: dict) -> None:
            if kind == "result":
                info = f"t{index:03d} at step {metrics.get('step')}"
                bar.update(task, info=info)
            else:
                bar.advance(task)
                bar.update(task, info=f"t{index:03d} {kind}")

        try:
            report = sweep(
                spec,
                args.out,
                address=args.address,
                resume=args.resume,
                overwrite=args.overwrite,
                concurrent=args.concurrent,
                cpus_per_trial=args.cpus_per_trial,
                entry="rtrlx.cli:main",
                check=check_trial,
                on_event=on_event,
            )
        except (ValueError, ImportError) as exc:
            err.print(f"[red]rtrlx sweep: {escape(exc)}[/red]")
            return 2
    stdout().print(_table(report))
    _print_failures(err, report, escape)
    left = report["unfinished"]
    if left:
        err.print(
            f"[yellow]{left} trial(s) did not finish (interrupted or not started): `rtrlx "
            f"sweep --resume --out {args.out}` runs them (a run goes on from its last "
            "checkpoint).[/yellow]"
        )
    rate = report["trials_per_hour"]
    err.print(
        f"{len(report['trials'])} trials, {report['seconds']:.0f} s, "
        + (f"{rate:.1f} trials/hour; " if rate else "")
        + f"results: {args.out}/results.json, results.csv"
    )
    return 130 if left else 0


def _table(report: dict) -> Any:
    from rich.table import Table

    axes = [a for a in report["axes"] if a != "seed"]
    better = "higher" if report["mode"] == "max" else "lower"
    table = Table(title=f"rtrlx sweep: {report['metric']} ({better} is better), best first")
    for name in axes:
        table.add_column(name)
    for name in (f"{report['metric']} (mean ± sd)", "per seed", "seeds", "failed/stopped"):
        table.add_column(name, justify="right")
    for row in report["table"]:
        cells = [_fmt(row[a]) for a in axes]
        mean = "-" if row["mean"] is None else f"{row['mean']:.4g} ± {row['sd']:.2g}"
        per_seed = ", ".join(f"{v:.3g}" for v in row["values"])
        table.add_row(
            *cells, mean, per_seed, str(row["seeds"]), f"{row['failed']}/{row['stopped']}"
        )
    return table


def _print_failures(err: Any, report: dict, escape: Any) -> None:
    for t in report["trials"]:
        if t["status"] == "failed":
            point = ", ".join(f"{a}={_fmt(t[a])}" for a in report["axes"])
            err.print(f"[yellow]t{t['index']:03d} ({point}) failed: {escape(t['error'])}[/yellow]")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _put(data: dict, section: str, name: str, value: Any) -> None:
    """Set ``name`` in ``section``, removing it from the others: a flag wins over the file."""
    from .sweep.spec import setting

    for other in ("args", "grid", "random"):
        for key in [k for k in data[other] if setting(k) == setting(name)]:
            del data[other][key]
    data[section][name] = value


def _pair(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{flag} {item!r}: write NAME=VALUE.")
    return name.strip(), value
