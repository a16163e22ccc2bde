"""``rtrlx lm`` and ``rtrlx sample``: language models on Penn Treebank characters."""

import argparse
import json
import os
from typing import Any


def add_parsers(sub: Any, run_dir_flags: Any, positive: Any, csv: Any) -> None:
    """Register ``lm`` and ``sample`` on the ``rtrlx`` sub-parsers."""
    from .lm import LMConfig

    d = LMConfig()
    lm = sub.add_parser(
        "lm",
        help="train character-level language models on Penn Treebank (the standard protocol)",
        description="Windows of BPTT over the training text in BATCH contiguous streams, the "
        "state carried across windows, Adam with gradient clipping, validation on the full "
        "validation text every --eval-every windows (best model kept, learning rate decayed "
        "on a plateau), and test BPC of the best model on the full test text. Several "
        "comma-separated --cell values run one after another into DIR/CELL and are compared "
        "in a table; --params sizes each to the same parameter count.",
    )
    lm.add_argument(
        "--cell",
        type=csv,
        default=[d.cell],
        help="cell(s): lstm, rhn, fs-lstm:2, fs-lstm:4, stacked-lstm:2, ... (%(default)s)",
    )
    lm.add_argument("--hidden", type=positive, default=d.hidden, help="units (fast cells)")
    lm.add_argument("--slow", type=int, default=0, help="slow cell units (0: 4/7 of --hidden)")
    lm.add_argument(
        "--params", type=float, default=0, help="size every cell to this many parameters"
    )
    lm.add_argument("--embed", type=int, default=d.embed, help="embedding width (0: one-hot)")
    lm.add_argument("--batch", type=positive, default=d.batch, help="streams (32)")
    lm.add_argument("--window", type=positive, default=d.window, help="BPTT window (100)")
    lm.add_argument("--windows", type=positive, default=d.windows, help="updates in all")
    lm.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget per cell")
    lm.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (2e-3)")
    lm.add_argument("--clip", type=float, default=d.clip, help="gradient norm clip (1)")
    lm.add_argument("--dropout", type=float, default=0.0, help="dropout rate (0)")
    lm.add_argument("--zoneout-h", type=float, default=0.0, help="zoneout of h (fs-* only)")
    lm.add_argument("--zoneout-c", type=float, default=0.0, help="zoneout of c (fs-* only)")
    lm.add_argument(
        "--eval-every", type=positive, default=d.eval_every, help="windows between validations"
    )
    lm.add_argument(
        "--eval-streams", type=positive, default=d.eval_streams, help="pieces of a split"
    )
    lm.add_argument("--patience", type=int, default=d.patience, help="bad validations (2)")
    lm.add_argument("--decay", type=float, default=d.decay, help="lr factor on plateau (0.1)")
    lm.add_argument("--seed", type=int, default=0, help="seed (0)")
    lm.add_argument("--out", default=None, help="run directory (DIR/CELL for several cells)")
    lm.add_argument("--resume", action="store_true", help="continue the run(s) in --out")
    run_dir_flags(lm)
    sample = sub.add_parser(
        "sample",
        help="print text drawn from a language model trained by rtrlx lm",
        description="Reads DIR/config.json and DIR/best.eqx, runs --prime through the model "
        "and prints --chars characters drawn from its distribution.",
    )
    sample.add_argument("--run", required=True, help="the run directory of rtrlx lm")
    sample.add_argument("--prime", default="the ", help="text read first ('the ')")
    sample.add_argument("--chars", type=positive, default=400, help="characters to draw")
    sample.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    sample.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")


def _configs(args: argparse.Namespace) -> list[Any]:
    """One config per ``--cell``, each sized to ``--params`` when given."""
    from .lm import LMConfig, hidden_for

    if args.params and args.slow:
        raise ValueError(
            "--params sizes each fs-* cell with its slow cell at 4/7 of the fast ones; drop "
            "--slow, or give --hidden and --slow instead of --params."
        )
    out = []
    for cell in args.cell:
        fs = cell.startswith("fs-")  # slow size and zoneout are the FS-RNN's alone
        config = LMConfig(
            cell=cell,
            hidden=args.hidden,
            slow=args.slow if fs else 0,
            embed=args.embed,
            batch=args.batch,
            window=args.window,
            windows=args.windows,
            minutes=args.minutes,
            lr=args.lr,
            clip=args.clip,
            dropout=args.dropout,
            zoneout_h=args.zoneout_h if fs else 0.0,
            zoneout_c=args.zoneout_c if fs else 0.0,
            eval_every=args.eval_every,
            eval_streams=args.eval_streams,
            patience=args.patience,
            decay=args.decay,
            seed=args.seed,
        )
        config.validate()
        if args.params:
            config = hidden_for(config, int(args.params))
        out.append(config)
    return out


def _done(out: str) -> bool:
    """Whether the run in ``out`` finished (a result written, not stopped by Ctrl-C)."""
    path = os.path.join(out, "result.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return not json.load(f).get("interrupted", True)


def run_lm(args: argparse.Namespace, drive_from_cli: Any) -> int:
    """``rtrlx lm``: each cell's run with a progress bar, then the comparison table."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .lm import lm, parameters

    err = Console(stderr=True)
    try:
        configs = _configs(args)
    except ValueError as exc:
        from rich.markup import escape

        err.print(f"[red]rtrlx lm: {escape(str(exc))}[/red]")
        return 2
    results = []
    for config in configs:
        sub = args.out
        if args.out and len(configs) > 1:
            sub = os.path.join(args.out, config.cell.replace(":", "-"))
        if sub and args.resume and _done(sub):
            with open(os.path.join(sub, "result.json")) as f:
                results.append(json.load(f))
            err.print(f"{config.cell}: finished in {sub}; kept")
            continue
        resume = bool(args.resume and sub and os.path.exists(os.path.join(sub, "checkpoint.eqx")))
        label = f"{config.cell} ({parameters(config):,} parameters)"
        total = config.minutes * 60 if config.minutes else config.windows
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
            task = bar.add_task(label, total=total, info="compiling")

            def show(record: dict, task: Any = task, config: Any = config) -> None:
                done = record["wall_seconds"] if config.minutes else record["step"]
                info = (
                    f"window {record['step']}  train {record['train_bpc']:.3f}  valid "
                    f"{record['valid_bpc']:.3f} BPC  {record['chars_per_second']:.0f} chars/s"
                )
                bar.update(task, completed=done, info=info)

            ns = argparse.Namespace(**{**vars(args), "out": sub, "resume": resume})
            result, code = drive_from_cli("lm", err, lm, config, ns, show)
        if result is None:
            return code
        results.append(result)
        if result["interrupted"]:  # Ctrl-C stops the whole sequence, not one cell
            err.print(f"interrupted; checkpoint saved in {sub}; --resume continues")
            _table(results)
            return 130
    _table(results)
    if args.out and len(configs) > 1:
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)
    else:
        print(json.dumps(results[0], indent=2, default=str))
    return 0


def _table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="character-level Penn Treebank (best validation model)")
    for column in ("cell", "parameters", "windows", "epochs", "minutes", "valid BPC", "test BPC"):
        table.add_column(column, justify="left" if column == "cell" else "right")
    for r in sorted(results, key=lambda r: r["test_bpc"] if r["test_bpc"] else 99):
        table.add_row(
            r["cell"],
            f"{r['parameters']:,}",
            str(r["windows"]),
            f"{r['epochs']:.2f}" if r["epochs"] is not None else "-",
            f"{r['wall_seconds'] / 60:.1f}" if r["wall_seconds"] else "-",
            f"{r['valid_bpc']:.3f}",
            f"{r['test_bpc']:.3f}" if r["test_bpc"] is not None else "-",
        )
    Console(stderr=True).print(table)


def run_sample(args: argparse.Namespace) -> int:
    """``rtrlx sample``: text drawn from a trained model."""
    import jax
    from rich.console import Console
    from rich.markup import escape

    from .lm import load_model, sample

    err = Console(stderr=True)
    try:
        config, model = load_model(args.run)
        text = sample(model, args.prime, args.chars, jax.random.key(args.seed), args.temperature)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        err.print(f"[red]rtrlx sample: {escape(str(exc))}[/red]")
        return 2
    err.print(f"{config.cell}, {model.parameters():,} parameters, from {args.run}:")
    print(args.prime + text)
    return 0
