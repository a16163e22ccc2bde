"""The ``rtrlx`` command line."""

import argparse
import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _check_names(learners: Sequence[str], cells: Sequence[str] = ()) -> None:
    """Raise ``ValueError`` listing the valid choices for an unknown learner or cell."""
    from .cells import CELLS
    from .learners import make

    for name in learners:
        make(name)
    for name in cells:
        if name not in CELLS:
            raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}.")


def _names(text: str) -> list[str]:
    """A comma-separated list that must name at least one thing (argparse ``type``)."""
    names = _csv(text)
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected at least one comma-separated name, got {text!r}"
        )
    return names


def _print_error(err: Any, command: str, exc: BaseException | str) -> None:
    """``rtrlx COMMAND: message`` in red, the message escaped (``[h; x]`` is not markup)."""
    from rich.markup import escape

    err.print(f"[red]rtrlx {command}: {escape(str(exc))}[/red]")


def _check_output(path: str, flag: str, *, directory: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be written.

    Creates the missing parent folders (or the folder itself, when ``directory``).

    Raises:
        ValueError: naming the flag, the path and what is wrong with it.
    """
    import os
    import tempfile

    if not path:
        raise ValueError(f"{flag}: the path is empty; give a file name.")
    folder = path if directory else os.path.dirname(os.path.abspath(path))
    if not directory and os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a directory; give a file name, e.g. {path}/out")
    try:
        os.makedirs(folder, exist_ok=True)
        if not directory and os.path.exists(path):
            open(path, "a").close()  # appends nothing; fails when the file is read-only
        else:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ValueError(
            f"{flag} {path}: cannot write there ({why}); choose a writable location."
        ) from None


def _check_outputs(args: argparse.Namespace, err: Any, command: str) -> bool:
    """Whether every output path of ``args`` can be written (else print why and say no)."""
    outputs = [
        (getattr(args, "json", None), "--json", False),
        (getattr(args, "plot", None), "--plot", False),
        (getattr(args, "plot_dir", None), "--plot-dir", True),
    ]
    try:
        for path, flag, directory in outputs:
            if isinstance(path, str):
                _check_output(path, flag, directory=directory)
    except ValueError as exc:
        _print_error(err, command, exc)
        return False
    return True


def _task_param_help(task: str) -> str:
    """``--task-param``'s help: the default task's parameters and a valid example."""
    from .tasks import TASKS

    names = ", ".join(TASKS[task][1]._fields)
    return (
        f"a task parameter NAME=VALUE (repeatable); {task}'s are {names}, e.g. "
        "--task-param max_length=64"
    )


def _stdout_console():
    """A rich console for results: the terminal's width, or 160 columns when piped."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rtrlx``."""
    from .check import DEFAULT_CELLS, DEFAULT_LEARNERS

    parser = argparse.ArgumentParser(
        prog="rtrlx", description="Online gradients for recurrent networks in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="every learner against BPTT on every cell (float64): error, cosine, speed",
        description="Compare each learner's gradient with BPTT's on each cell in float64 at "
        "random parameters. Exits 1 when a learner that claims exactness is not exact.",
    )
    check.add_argument(
        "--learners",
        type=_names,
        default=list(DEFAULT_LEARNERS),
        help="comma-separated learners (default: %(default)s)",
    )
    check.add_argument(
        "--cells",
        type=_names,
        default=list(DEFAULT_CELLS),
        help="comma-separated cells (default: %(default)s)",
    )
    check.add_argument("--hidden", type=_positive, default=8, help="units per cell (8)")
    check.add_argument("--input", type=_positive, default=3, help="input features (3)")
    check.add_argument("--steps", type=_positive, default=20, help="sequence length T (20)")
    check.add_argument("--batch", type=_positive, default=4, help="batch size (4)")
    check.add_argument("--seed", type=int, default=0, help="random seed (0)")
    check.add_argument("--repeats", type=_positive, default=3, help="timing repetitions (3)")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")

    bench = sub.add_parser(
        "bench",
        help="time per step of learners against BPTT on the same cell, batch and sequence",
        description="Median time per step (after compilation) of each learner and of BPTT, "
        "measured in one run, and their ratio. Streaming learners cost the same per step at "
        "any T, so --learner-steps can measure an expensive one on a shorter sequence. "
        "Learners may also be 'inference' (forward and loss only) and NAME/stream (the "
        "streaming step of a learner that has a whole-sequence path, e.g. online_deep). "
        "--memory-steps adds XLA's working-memory plan at each T (compiled, not run), a "
        "table and, with --plot, memory against T.",
    )
    bench.add_argument(
        "--learners",
        type=_names,
        default=["rtrl", "snap:1"],
        help="comma-separated learners besides bptt (default: %(default)s)",
    )
    bench.add_argument("--cell", default="gru", help="cell name (gru)")
    bench.add_argument(
        "--hidden",
        type=lambda t: [_positive(v) for v in _names(t)],
        default=[32],
        help="comma-separated hidden sizes (32)",
    )
    bench.add_argument("--steps", type=_positive, default=1000, help="sequence length T (1000)")
    bench.add_argument(
        "--learner-steps",
        type=_positive,
        default=None,
        help="sequence length for the learners (default: --steps)",
    )
    bench.add_argument("--batch", type=_positive, default=16, help="batch size (16)")
    bench.add_argument("--input", type=_positive, default=16, help="input features (16)")
    bench.add_argument("--repeats", type=_positive, default=5, help="timed repetitions (5)")
    bench.add_argument("--layers", type=_positive, default=1, help="blocks of a deep-* stack")
    bench.add_argument(
        "--by-stream",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run a batch's streams one after another (sequence_grads(by_stream=...)): yes "
        "for every learner whose streams are independent (rtrl, snap, diag_rtrl, kf_rtrl, "
        "ok); auto (default): on CPU when one stream's learner state is large. The table "
        "marks the learners that ran by stream",
    )
    bench.add_argument(
        "--memory-steps",
        type=lambda t: [_positive(v) for v in _csv(t)],
        default=[],
        help="comma-separated T at which to report compiled working memory (none)",
    )
    bench.add_argument("--plot", metavar="PNG", default=None, help="memory-vs-T plot here")
    bench.add_argument(
        "--suite",
        choices=["default", "tiny"],
        default=None,
        help="run a fixed suite with its targets instead (default: about 10 min on 2 cores); "
        "--json and --plot-dir apply",
    )
    bench.add_argument(
        "--plot-dir", default=None, help="with --suite: write time_vs_n.png, memory_vs_T.png"
    )
    bench.add_argument("--json", metavar="FILE", default=None, help="also write JSON here")

    from .bench.noise import DEFAULT_CELLS as NOISE_CELLS
    from .bench.noise import DEFAULT_LEARNERS as NOISE_LEARNERS
    from .bench.noise import DEFAULT_LENGTHS

    noise = sub.add_parser(
        "noise",
        help="the noise study: variance and cosine of each approximation against BPTT",
        description="For each cell at trained-like random parameters (float64) and a copy-task "
        "stream of each length T, the normalised variance E|g - g*|^2 / |g*|^2 and the mean "
        "cosine of each learner's gradient against BPTT's, over --samples keys for the "
        "stochastic learners (uoro, kf_rtrl, ok).",
    )
    noise.add_argument(
        "--cells",
        type=_names,
        default=list(NOISE_CELLS),
        help="comma-separated cells; elman is leaky (alpha 0.5), for rflo (%(default)s)",
    )
    noise.add_argument(
        "--learners",
        type=_names,
        default=list(NOISE_LEARNERS),
        help="comma-separated learners (default: %(default)s)",
    )
    noise.add_argument(
        "--lengths",
        type=lambda t: [_positive(v) for v in _names(t)],
        default=list(DEFAULT_LENGTHS),
        help="comma-separated sequence lengths T (%(default)s)",
    )
    noise.add_argument("--hidden", type=_positive, default=32, help="units (32)")
    noise.add_argument(
        "--samples", type=_positive, default=100, help="keys per stochastic learner (100)"
    )
    noise.add_argument("--seed", type=int, default=0, help="random seed (0)")
    noise.add_argument("--json", metavar="FILE", default=None, help="also write JSON here")
    noise.add_argument("--plot", metavar="FILE.png", default=None, help="also plot to a PNG")

    from .train import TrainConfig

    defaults = TrainConfig()
    train = sub.add_parser(
        "train",
        help="train one learner online on a task, with a progress bar and checkpoints",
        description="Online training: the parameters are updated as the streams flow. "
        "Writes DIR/metrics.jsonl, DIR/checkpoint.eqx and DIR/result.json; --resume "
        "continues a run from its checkpoint. Ctrl-C saves a checkpoint and the results.",
    )
    compare = sub.add_parser(
        "compare",
        help="train several learners on the same task, cell, budget and seeds; table + plots",
        description="Runs `rtrlx train` for every learner and seed with everything else equal, "
        "then prints a table (metric mean and spread over seeds, steps per second, learner "
        "state memory) and writes DIR/summary.json and DIR/curves.png. Each run goes to its own "
        "DIR/LEARNER-seedS; re-running in the same DIR replaces them. Exits 1 when every run "
        "failed.",
    )
    for p, learner_flag in ((train, "--learner"), (compare, "--learners")):
        p.add_argument(
            "--recipe",
            default=None,
            metavar="NAME",
            help="start from a paper's protocol (rtrlx recipes lists them); the flags given "
            "beside it override its settings",
        )
        p.add_argument("--task", default=defaults.task, help=f"task ({defaults.task})")
        p.add_argument("--cell", default=defaults.cell, help=f"cell ({defaults.cell})")
        if learner_flag == "--learner":
            p.add_argument("--learner", default=None, help=f"learner ({defaults.learner})")
        else:
            p.add_argument(
                "--learners",
                type=_csv,
                default=["rtrl", "ok:4", "kf_rtrl", "uoro", "snap:1", "tbptt:5"],
                help="comma-separated learners (%(default)s)",
            )
            p.add_argument("--seeds", type=_positive, default=3, help="seeds per learner (3)")
        p.add_argument("--hidden", type=_positive, default=defaults.hidden, help="units (32)")
        p.add_argument(
            "--layers", type=_positive, default=1, help="blocks of a deep-lru/deep-rtu stack (1)"
        )
        p.add_argument("--steps", type=_positive, default=defaults.steps, help="steps (10000)")
        p.add_argument("--lr", type=float, default=defaults.lr, help="learning rate (10^-3.5)")
        p.add_argument("--batch", type=_positive, default=defaults.batch, help="streams (16)")
        p.add_argument("--seed", type=int, default=0, help="(first) seed (0)")
        p.add_argument(
            "--update-every", type=_positive, default=1, help="steps between updates (1)"
        )
        p.add_argument(
            "--optimizer",
            default="adam",
            help="adam (optax's), adam-tf1 (TensorFlow 1's epsilon-hat form) or sgd (adam)",
        )
        p.add_argument(
            "--cell-grad-scale",
            type=float,
            default=1.0,
            help="multiply the cell's gradient by this before clip and optimizer (1)",
        )
        p.add_argument(
            "--init-scale",
            type=float,
            default=0.0,
            help="0: the cells' own initialisation; > 0: every parameter from N(0, scale^2) (0)",
        )
        p.add_argument(
            "--clip", type=float, default=0.0, help="clip the gradient's norm to this (0: off)"
        )
        p.add_argument(
            "--clip-scope",
            choices=("all", "cell"),
            default="all",
            help="what --clip measures: every gradient, or the cell's only (all)",
        )
        p.add_argument(
            "--layout",
            choices=("auto", "batched", "streams"),
            default="auto",
            help="order of the batch's streams in each step: all together (batched), one "
            "after another (streams), or the faster, measured at the start (auto)",
        )
        p.add_argument("--chunk", type=_positive, default=250, help="steps per jitted call")
        p.add_argument(
            "--checkpoint-every", type=int, default=5000, help="steps between checkpoints"
        )
        p.add_argument(
            "--eval-every", type=int, default=0, help="steps between evaluations (0: at end)"
        )
        p.add_argument(
            "--task-param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=_task_param_help(defaults.task),
        )
        p.add_argument("--out", default=None, help="output directory")
        # Unset flags stay None, so that a --recipe's value is kept where no flag overrides
        # it; _config fills the rest from TrainConfig's defaults (the values the help shows).
        p.set_defaults(**dict.fromkeys(CONFIG_FLAGS, None))
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    recipes = sub.add_parser(
        "recipes",
        help="list the papers' protocols that --recipe runs, or show one",
        description="Without NAME: the recipes, one line each. With NAME: its settings, "
        "where rtrlx differs from the published protocol, and the published results.",
    )
    recipes.add_argument("name", nargs="?", default=None, help="a recipe to show")
    recipes.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="with NAME: draw the --runs beside the published curves",
    )
    recipes.add_argument(
        "--runs", type=_names, default=[], metavar="DIR,...", help="run directories to draw"
    )
    _run_dir_flags(train)
    _rl_parser(sub)
    from ._cli_lm import add_parsers

    add_parsers(sub, _run_dir_flags, _positive, _names)
    from ._cli_ea import add_parser

    add_parser(sub, _positive, _names)
    from ._cli_sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub, _positive)
    return parser


def _rl_parser(sub: Any) -> None:
    from .rl.core import CORES
    from .rl.run import AGENTS, RLConfig

    d = RLConfig()
    rl = sub.add_parser(
        "rl",
        help="train agents with recurrent cores online in a partially observable environment",
        description="Reinforcement learning with a recurrent core whose gradients come from an "
        "rtrlx learner: the online actor-critic AC(lambda) or PPO (real-time RTRL traces, or "
        "truncated BPTT with --learner tbptt:k). All seeds run together as one vmap. Writes "
        "DIR/summary.json (one record per seed), DIR/curves.jsonl, DIR/curve.png and a "
        "checkpoint that --resume continues.",
    )
    rl.add_argument("--env", default=d.env, help=f"environment ({d.env}); see rtrlx.rl.make")
    rl.add_argument("--core", default=d.core, help=f"{', '.join(CORES)} ({d.core})")
    rl.add_argument("--agent", default=d.agent, help=f"{' or '.join(AGENTS)} ({d.agent})")
    rl.add_argument(
        "--learner",
        default=None,
        help="the core's learner (default: diag_rtrl for rtu/lru, tbptt:16 for gru)",
    )
    rl.add_argument("--hidden", type=_positive, default=None, help="core units (sized by budget)")
    rl.add_argument(
        "--recurrent-params",
        type=_positive,
        default=d.recurrent_params,
        help=f"recurrent-parameter budget that sizes the core ({d.recurrent_params})",
    )
    rl.add_argument(
        "--head-width", type=_positive, default=d.head_width, help="head MLP width (64)"
    )
    rl.add_argument("--steps", type=_positive, default=d.steps, help="env steps per seed")
    rl.add_argument("--seeds", type=_positive, default=d.seeds, help=f"seeds ({d.seeds})")
    rl.add_argument(
        "--layout",
        choices=("auto", "batched", "streams"),
        default=d.layout,
        help="order of the environments' streams in real-time PPO's learner steps (auto)",
    )
    rl.add_argument("--seed", type=int, default=0, help="first seed (0)")
    rl.add_argument("--chunks", type=_positive, default=d.chunks, help="progress updates (20)")
    rl.add_argument("--lr", type=float, default=None, help="learning rate (the agent's default)")
    rl.add_argument(
        "--agent-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an agent hyperparameter, e.g. --agent-param lam=0.9 (repeatable)",
    )
    rl.add_argument("--out", default=None, help="output directory")
    rl.add_argument("--resume", action="store_true", help="continue the run in --out")
    _run_dir_flags(rl)


def _run_dir_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a command whose run directory the run driver keeps."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds another run (its files are deleted)",
    )
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        choices=["lr"],
        metavar="SETTING",
        help="with --resume: let SETTING differ from the saved run (lr: go on from the "
        "checkpoint with a new --lr, e.g. after a divergence)",
    )


def _task_params(items: list[str], flag: str = "--task-param") -> dict:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}.")
        try:
            params[name] = int(value)
        except ValueError:
            try:
                params[name] = float(value)
            except ValueError:
                params[name] = value
    return params


#: The ``train``/``compare`` flags that set a ``TrainConfig`` field of the same name.
CONFIG_FLAGS = (
    "task",
    "cell",
    "hidden",
    "layers",
    "steps",
    "lr",
    "batch",
    "seed",
    "update_every",
    "optimizer",
    "chunk",
    "checkpoint_every",
    "eval_every",
    "layout",
    "init_scale",
    "clip",
    "clip_scope",
    "cell_grad_scale",
)


def _config(args: argparse.Namespace, learner: str | None):
    """The run's ``TrainConfig``: the recipe's (or the defaults), then the flags given.

    ``ValueError`` for an unknown recipe or a malformed ``--task-param``.
    """
    from .train import TrainConfig

    base = TrainConfig()
    if args.recipe:
        from .recipes import recipe

        found = recipe(args.recipe)
        base = dataclasses.replace(found.config, recipe=found.label)
    given = {name: getattr(args, name) for name in CONFIG_FLAGS if getattr(args, name) is not None}
    task_params = {} if given.get("task", base.task) != base.task else dict(base.task_params)
    task_params |= _task_params(args.task_param)
    if learner:
        given["learner"] = learner
    return dataclasses.replace(base, **given, task_params=task_params)


def _recipes(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .recipes import OLDER, RECIPES, recipe

    out, err = _stdout_console(), Console(stderr=True)
    misuse = _recipes_misuse(args)
    if misuse:
        err.print(f"[red]rtrlx recipes: {_escape(misuse)}[/red]")
        return 2
    if args.name is None:
        table = Table(title="recipes (rtrlx train --recipe NAME)")
        for col in ("recipe", "learner", "what"):
            table.add_column(col)
        for name in RECIPES:
            for r in (recipe(name), *(make() for make in OLDER.get(name, {}).values())):
                table.add_row(r.label, r.config.learner, r.summary)
        out.print(table)
        return 0
    try:
        r = recipe(args.name)
    except ValueError as exc:
        err.print(f"[red]rtrlx recipes: {_escape(exc)}[/red]")
        return 2
    print(f"{r.label}: {r.summary}\n")
    print(inspect.cleandoc(r.doc))
    print(f"\nWhere rtrlx differs: {r.differences}\n")
    for label, points in r.reference.items():
        print(f"Published ({label}): step, low, mean, high")
        for point in points:
            print("  " + ", ".join(f"{v:g}" for v in point))
    if args.plot:
        from .recipes import plot_runs

        try:
            _check_output(args.plot, "--plot")
            drawn = plot_runs(r, args.runs, args.plot)
        except ValueError as exc:
            err.print(f"[red]rtrlx recipes: {_escape(exc)}[/red]")
            return 2
        err.print(f"plot: {args.plot} ({len(drawn)} runs beside the published curves)")
    return 0


def _recipes_misuse(args: argparse.Namespace) -> str:
    """What is wrong with a ``rtrlx recipes`` flag combination, or empty."""
    usage = "rtrlx recipes NAME --plot FILE.png --runs DIR,..."
    if args.plot and args.name is None:
        return f"--plot draws the runs of one recipe: name it ({usage})."
    if args.runs and not args.plot:
        return f"--runs are drawn into a --plot: add one ({usage})."
    return ""


def _short(record: dict) -> str:
    skip = {"step", "steps_per_second"}
    return "  ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in record.items()
        if k not in skip
    )


def _escape(exc: BaseException | str) -> str:
    """An error's text for a rich console (its brackets, e.g. ``[h; x]``, kept)."""
    from rich.markup import escape

    return escape(str(exc))


def _drive_from_cli(
    command: str, err: Any, run: Any, config: Any, args: argparse.Namespace, show: Any
) -> tuple[Any, int]:
    """Run a job on the run driver with the run-directory flags.

    Returns:
        ``(result, 0)``, or ``(None, exit code)`` after printing why: 2 for a bad directory,
        resume or setting, 1 for a run that stopped (divergence), 130 for Ctrl-C before the
        first chunk (nothing saved).
    """
    from ._errors import RtrlxError
    from .driver import RunError

    try:
        result = run(
            config,
            out=args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            allow_changes=args.allow_change,
            on_chunk=show,
        )
    except (RunError, ValueError) as exc:
        err.print(f"[red]rtrlx {command}: {_escape(exc)}[/red]")
        return None, 2
    except RtrlxError as exc:
        err.print(f"[red]rtrlx {command}: {_escape(exc)}[/red]")
        return None, 1
    except KeyboardInterrupt:
        err.print(f"rtrlx {command}: interrupted before the run started; nothing was saved.")
        return None, 130
    return result, 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .train import train

    err = Console(stderr=True)
    try:
        config = _config(args, args.learner)
        config.validate()
    except ValueError as exc:
        err.print(f"[red]rtrlx train: {_escape(exc)}[/red]")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
        task = bar.add_task(
            f"{config.learner} on {config.task}", total=config.steps, info="compiling"
        )

        def show(record: dict) -> None:
            info = f"{record['steps_per_second']:.0f} steps/s  {_short(record)}"
            bar.update(task, completed=record["step"], info=info)

        result, code = _drive_from_cli("train", err, train, config, args, show)
        if result is None:
            return code
    if result["data"]:
        err.print(f"data: {result['data']}")
    if result["interrupted"]:
        err.print(f"interrupted at step {result['steps']}; checkpoint saved in {args.out}")
    print(json.dumps(result, indent=2, default=str))
    return 0


#: Cores of CPU time other processes may use during a timing before it is called disturbed.
DISTURBED = 0.1


def _warn_disturbed(err: Any, results: list) -> None:
    """Name the timings during which other processes used the CPU (their spread is theirs)."""
    for r in results:
        if r.other_load is not None and r.other_load > DISTURBED:
            err.print(
                f"[yellow]{r.learner}: other processes used {r.other_load:.2f} cores while it "
                "was timed; on a 2-core machine XLA then waits for the core they take, so "
                "rerun on a quiet machine for figures to compare.[/yellow]"
            )


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.table import Table

    from .compare import CompareError, compare
    from .driver import RunError

    err = Console(stderr=True)
    try:
        base = _config(args, args.learners[0] if args.learners else "")
    except ValueError as exc:
        err.print(f"[red]rtrlx compare: {_escape(exc)}[/red]")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=err) as bar:
        overall = bar.add_task("compare", total=len(args.learners) * args.seeds, info="")
        tasks: dict[tuple[str, int], Any] = {}

        def start(config: Any) -> None:
            label = f"{config.learner} seed {config.seed}"
            tasks[config.learner, config.seed] = bar.add_task(
                label, total=config.steps, info="compiling"
            )

        def show(config: Any, record: dict) -> None:
            info = f"{record['steps_per_second']:.0f} steps/s  {_short(record)}"
            bar.update(tasks[config.learner, config.seed], completed=record["step"], info=info)

        def end(config: Any, result: dict) -> None:
            bar.remove_task(tasks.pop((config.learner, config.seed)))
            bar.advance(overall)
            if result.get("error"):
                err.print(f"[red]{_escape(result['error'])}[/red]")
            if result.get("interrupted"):
                err.print("interrupted: writing the results so far")

        try:
            report = compare(
                base,
                args.learners,
                seeds=args.seeds,
                out=args.out or "runs/compare",
                on_start=start,
                on_chunk=show,
                on_end=end,
            )
        except CompareError as exc:
            err.print(f"[red]rtrlx compare: {_escape(exc)}[/red]")
            return 1
        except (RunError, ValueError) as exc:
            err.print(f"[red]rtrlx compare: {_escape(exc)}[/red]")
            return 2
        except KeyboardInterrupt:
            err.print("rtrlx compare: interrupted before a run started; nothing was saved.")
            return 130
    metric = report["metric"]
    table = Table(title=report["title"])
    for col in ("learner", f"{metric} (mean ± sd)", "per seed", "steps/s", "state MB"):
        table.add_column(col, justify="left" if col == "learner" else "right")
    for row in report["table"]:
        table.add_row(
            row["learner"],
            "failed" if row["mean"] is None else f"{row['mean']:.4g} ± {row['sd']:.2g}",
            ", ".join(f"{v:.3g}" for v in row["values"]),
            "-" if row["steps_per_second"] is None else f"{row['steps_per_second']:.0f}",
            "-" if row["state_mb"] is None else f"{row['state_mb']:.2f}",
        )
    _stdout_console().print(table)
    err.print(f"summary: {report['summary']}, curves: {report['curves'] or 'none (no points)'}")
    return 0


def _rl_config(args: argparse.Namespace) -> Any:
    """The ``RLConfig`` of the flags (``ValueError`` for a malformed ``--agent-param``)."""
    from .rl.run import RLConfig

    agent_params = _task_params(args.agent_param, "--agent-param")
    if args.lr is not None:
        agent_params["lr"] = args.lr
    return RLConfig(
        env=args.env,
        core=args.core,
        agent=args.agent,
        learner=args.learner,
        hidden=args.hidden,
        recurrent_params=args.recurrent_params,
        head_width=args.head_width,
        steps=args.steps,
        seeds=args.seeds,
        seed=args.seed,
        chunks=args.chunks,
        agent_params=agent_params,
        layout=args.layout,
    )


def _rl(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ._errors import RtrlxError
    from .rl.run import build, train

    err = Console(stderr=True)
    try:
        config = _rl_config(args)
        setup = build(config)
    except (ValueError, TypeError, RtrlxError) as exc:
        err.print(f"[red]rtrlx rl: {_escape(exc)}[/red]")
        return 2
    metric = "msre" if setup.prediction else "return"
    label = f"{config.agent} {config.core}/{config.learner_spec} n={setup.hidden} on {config.env}"
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}"), console=err) as bar:
        task = bar.add_task(label, total=config.steps, info="compiling")

        last: dict[str, int] = {}  # the previous chunk's end (the first chunk compiles)

        def show(record: dict) -> None:
            values = [v for v in record[metric] if v is not None]
            mean = f"{sum(values) / len(values):.3g}" if values else "-"
            info = f"{metric} {mean} (mean of seeds)"
            if "step" in last:
                rate = (record["step"] - last["step"]) * config.seeds / record["seconds"]
                info += f"  {rate:,.0f} env steps/s"
            last["step"] = record["step"]
            bar.update(task, completed=record["step"], info=info)

        summary, code = _drive_from_cli("rl", err, train, config, args, show)
        if summary is None:
            return code
    if summary["interrupted"]:
        err.print(f"interrupted at step {summary['records'][0]['steps']}; --resume continues")
    print(json.dumps(summary["records"], indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from .check import EXACT_RTOL, run_check

    err = Console(stderr=True)
    try:
        _check_names(args.learners, args.cells)
    except ValueError as exc:
        _print_error(err, "check", exc)
        return 2
    total = len(args.learners) * len(args.cells)
    with Progress(console=err, transient=True, disable=args.json and not err.is_terminal) as bar:
        task = bar.add_task("checking learners against BPTT", total=total)
        try:
            records = run_check(
                args.learners,
                args.cells,
                hidden=args.hidden,
                input_size=args.input,
                steps=args.steps,
                batch=args.batch,
                seed=args.seed,
                repeats=args.repeats,
                on_result=lambda r: bar.update(
                    task, advance=1, description=f"{r['learner']} on {r['cell']}"
                ),
            )
        except ValueError as exc:
            _print_error(err, "check", exc)
            return 2
    failed = [r for r in records if r["status"] == "FAIL"]
    if args.json:
        print(
            json.dumps(
                {"config": vars(args) | {"exact_rtol": EXACT_RTOL}, "results": records},
                indent=2,
                default=str,
            )
        )
    else:
        table = Table(
            title=f"gradients against BPTT (float64, T={args.steps}, "
            f"batch={args.batch}, hidden={args.hidden})"
        )
        for col in ("learner", "cell", "status", "rel. error", "cosine", "ms/step"):
            table.add_column(col, justify="right" if col[0] in "rcm" and col != "cell" else "left")
        style = {"exact": "green", "approx": "yellow", "FAIL": "bold red", "unsupported": "dim"}
        for r in records:
            table.add_row(
                r["learner"],
                r["cell"],
                f"[{style[r['status']]}]{r['status']}[/]",
                "-" if r["rel_error"] is None else f"{r['rel_error']:.1e}",
                "-" if r["cosine"] is None else f"{r['cosine']:.4f}",
                "-" if r["ms_per_step"] is None else f"{r['ms_per_step']:.3f}",
            )
        _stdout_console().print(table)
        if failed:
            for r in failed:
                err.print(
                    f"[bold red]FAIL[/] {r['learner']} on {r['cell']}: {escape(r['message'])}"
                )
        else:
            err.print(f"every exactness claim holds (rel. error < {EXACT_RTOL:g}).")
    return 1 if failed else 0


def _bench_flag_error(args: argparse.Namespace) -> str | None:
    """Why these ``bench`` flags cannot work together (None: they can)."""
    if args.suite and args.plot:
        return "--plot is for a single run; with --suite, --plot-dir DIR writes its plots."
    if not args.suite and args.plot_dir:
        return "--plot-dir is for --suite; a single run plots with --plot FILE.png."
    if not args.suite and args.plot and not args.memory_steps:
        return (
            "--plot draws working memory against T, which needs --memory-steps (e.g. "
            "--memory-steps 100,1000,10000); add it, or drop --plot."
        )
    return None


def _machine() -> dict[str, Any]:
    """Where a benchmark ran: the platform, the CPU cores this process may use, devices."""
    import os
    import platform

    import jax

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"machine": platform.platform(), "cpus": cpus, "devices": jax.device_count()}


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    problem = _bench_flag_error(args)
    if problem:
        _print_error(err, "bench", problem)
        return 2
    if args.suite:
        return _bench_suite(args, err) if _check_outputs(args, err, "bench") else 2
    try:
        from .bench import resolve_learner
        from .train import DEEP_CELLS

        for name in args.learners:
            resolve_learner(name)
        _check_names([], [] if args.cell in DEEP_CELLS else [args.cell])
    except ValueError as exc:
        _print_error(err, "bench", exc)
        return 2
    if not _check_outputs(args, err, "bench"):
        return 2
    rows = _bench_times(args, err)
    results = [r for r in rows if not isinstance(r, dict)]
    unsupported = [r for r in rows if isinstance(r, dict)]
    skip = {(r["learner"], r["hidden"]) for r in unsupported}
    memory = _bench_memory(args, err, skip) if args.memory_steps else []
    limit = _print_times(args, err, rows)
    if memory:
        _print_memory(args, memory)
    if args.json:
        payload = {
            "config": vars(args),
            **_machine(),
            "results": [r.as_dict() for r in results],
            "unsupported": unsupported,
            "memory": memory,
            "matmul_flops_per_second": limit,
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)
    return 0


def _bench_times(args: argparse.Namespace, err: Any) -> list[Any]:
    """Each (hidden, learner)'s :class:`SpeedResult`, or a dict for an unsupported pair."""
    from rich.progress import Progress

    from ._errors import NotOnlineError, UnsupportedCellError
    from .bench import time_per_step

    learner_steps = args.learner_steps or args.steps
    rows: list[Any] = []
    jobs = [(h, lr) for h in args.hidden for lr in ["bptt", *args.learners]]
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("benchmarking", total=len(jobs))
        for hidden, learner in jobs:
            bar.update(task, description=f"{learner} on {args.cell} n={hidden}")
            try:
                rows.append(
                    time_per_step(
                        learner,
                        args.cell,
                        hidden=hidden,
                        steps=args.steps if learner == "bptt" else learner_steps,
                        batch=args.batch,
                        input_size=args.input,
                        repeats=args.repeats,
                        layers=args.layers,
                        by_stream=_by_stream_flag(args, learner),
                    )
                )
            except (UnsupportedCellError, NotOnlineError) as exc:
                rows.append(
                    {
                        "learner": learner,
                        "cell": args.cell,
                        "hidden": hidden,
                        "status": "unsupported",
                        "message": str(exc),
                    }
                )
            bar.advance(task)
    return rows


def _print_times(args: argparse.Namespace, err: Any, rows: list[Any]) -> float | None:
    """The time-per-step table (unsupported pairs as such); returns the matmul rate used."""
    import jax
    from rich.markup import escape
    from rich.table import Table

    from .bench import matmul_rate

    results = [r for r in rows if not isinstance(r, dict)]
    limit = matmul_rate() if any(r.influence_flops_per_step for r in results) else None
    base = {r.hidden: r.seconds_per_step for r in results if r.learner == "bptt"}
    table = Table(
        title=f"time per step, {args.cell}, batch {args.batch}, "
        f"{jax.devices()[0].platform}, {jax.numpy.zeros(()).dtype}"
    )
    columns = ("learner", "hidden", "T measured", "ms/step", "vs bptt", "spread", "compile s")
    for col in (*columns, "state floats/stream", "GFLOP/s (XLA count)"):
        table.add_column(col, justify="left" if col == "learner" else "right")
    for r in rows:
        if isinstance(r, dict):
            table.add_row(r["learner"], str(r["hidden"]), "-", "[dim]unsupported[/]", *"-" * 5)
            continue
        rate = "-"
        if r.flops_per_step:
            rate = f"{r.flops_per_step / r.seconds_per_step / 1e9:.3g}"
            if r.influence_flops_per_step and limit:
                share = r.influence_flops_per_step / r.seconds_per_step / limit
                rate += f" ({100 * share:.0f}% of matmul in the influence update)"
        table.add_row(
            r.learner + (" (by stream)" if r.by_stream else ""),
            str(r.hidden),
            str(r.steps),
            f"{1e3 * r.seconds_per_step:.4g}",
            f"{r.seconds_per_step / base[r.hidden]:.3g}x",
            f"{100 * r.spread:.0f}%",
            f"{r.compile_seconds:.1f}",
            f"{r.state_floats:,}" + (" (grows with T)" if r.learner == "bptt" else ""),
            rate,
        )
    _stdout_console().print(table)
    _warn_disturbed(err, results)
    for message in dict.fromkeys(r["message"] for r in rows if isinstance(r, dict)):
        err.print(f"[dim]unsupported:[/] {escape(message)}")
    if limit:
        err.print(
            f"matmul rate on this machine: {limit / 1e9:.3g} GFLOP/s (2048 x 2048, "
            f"{jax.numpy.zeros(()).dtype}, median of 5); exact RTRL's influence update is a "
            "dense matmul, so this is the rate it can approach."
        )
    return limit


def _bench_suite(args: argparse.Namespace, err: Any) -> int:
    """``rtrlx bench --suite NAME``: every case's table, then the targets, met or not."""
    from rich.progress import Progress
    from rich.table import Table

    from .bench.suite import SUITES, plot_suite, run_suite

    cases = SUITES[args.suite]
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("benchmark suite", total=None)
        report = run_suite(
            cases,
            repeats=args.repeats,
            on_progress=lambda text: bar.update(task, description=text),
        )
    console = _stdout_console()
    limit = report["matmul_flops_per_second"]
    for case in report["cases"]:
        base = {
            r["hidden"]: r["seconds_per_step"] for r in case["results"] if r["learner"] == "bptt"
        }
        table = Table(title=f"{case['case']}: {case['cell']}, batch {case['batch']}")
        for col in (
            "learner",
            "hidden",
            "T",
            "ms/step",
            "vs bptt",
            "spread",
            "compile s",
            "GFLOP/s",
            "memory MB",
            "memory vs bptt",
        ):
            table.add_column(col, justify="left" if col == "learner" else "right")
        base_memory = {
            r["hidden"]: r["memory_bytes"] for r in case["results"] if r["learner"] == "bptt"
        }
        for r in case["results"]:
            rate = (
                r["flops_per_step"] / r["seconds_per_step"] / 1e9 if r["flops_per_step"] else None
            )
            table.add_row(
                r["learner"] + (" (by stream)" if r.get("by_stream") else ""),
                str(r["hidden"]),
                str(r["steps"]),
                f"{1e3 * r['seconds_per_step']:.4g}",
                f"{r['seconds_per_step'] / base[r['hidden']]:.3g}x",
                f"{100 * r['spread']:.0f}%",
                f"{r['compile_seconds']:.1f}",
                "-" if rate is None else f"{rate:.3g}",
                f"{r['memory_bytes'] / 1e6:.3g} (T={r['memory_T']})",
                f"{r['memory_bytes'] / max(base_memory[r['hidden']], 1):.3g}x",
            )
        console.print(table)
    targets = Table(title=f"targets (matmul rate {limit / 1e9:.3g} GFLOP/s on this machine)")
    for col in ("case", "target", "measured", "met"):
        targets.add_column(col)
    for case in report["cases"]:
        for t in case["targets"]:
            value = f"{100 * t['value']:.0f}%" if t["unit"] == "of matmul" else f"{t['value']:.3g}"
            unit = "" if t["unit"] == "of matmul" else f" {t['unit']}"
            met = "[green]yes[/]" if t["met"] else "[red]no[/]"
            targets.add_row(case["case"], t["target"], value + unit, met)
    console.print(targets)
    from .bench.suite import REFERENCES_NOTE

    err.print(REFERENCES_NOTE)
    report |= {"suite": args.suite, **_machine()}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    if args.plot_dir:
        for path in plot_suite(report, args.plot_dir):
            err.print(f"wrote {path}")
    return 0


def _by_stream_flag(args: argparse.Namespace, learner: str) -> bool | None:
    """``--by-stream`` as ``sequence_grads``'s argument, for the learners it applies to."""
    from .bench.speed import resolve_learner

    built = resolve_learner(learner)
    if args.by_stream == "auto" or built is None or built.sequence is not None:
        return None
    return args.by_stream == "yes" and built.independent_streams


def _bench_memory(args: argparse.Namespace, err: Any, skip: Collection = ()) -> list[dict]:
    """Compiled working memory of bptt and every learner at each of ``--memory-steps``.

    ``skip`` holds the unsupported ``(learner, hidden)`` pairs.
    """
    from rich.progress import Progress

    from .bench import compiled_memory

    jobs = [
        (h, lr, t)
        for h in args.hidden
        for lr in ["bptt", *args.learners]
        for t in args.memory_steps
        if (lr, h) not in skip
    ]
    out = []
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("memory plans", total=len(jobs))
        for hidden, learner, steps in jobs:
            bar.update(task, description=f"compiling {learner}, n={hidden}, T={steps}")
            plan = compiled_memory(
                learner,
                args.cell,
                hidden=hidden,
                steps=steps,
                batch=args.batch,
                input_size=args.input,
                layers=args.layers,
                by_stream=_by_stream_flag(args, learner),
            )
            out.append({"learner": learner, "hidden": hidden, "T": steps, **plan})
            bar.advance(task)
    return out


def _print_memory(args: argparse.Namespace, memory: list[dict]) -> None:
    """The memory table, and the memory-vs-T plot when ``--plot`` is given."""
    from rich.table import Table

    table = Table(title=f"working memory (MB, XLA's plan), {args.cell}, batch {args.batch}")
    table.add_column("learner")
    table.add_column("hidden", justify="right")
    for t in args.memory_steps:
        table.add_column(f"T={t}", justify="right")
    table.add_column(f"T={args.memory_steps[-1]} / T={args.memory_steps[0]}", justify="right")
    series: dict[tuple[str, int], list[dict]] = {}  # (learner, hidden) -> rows in T order
    for r in memory:
        series.setdefault((r["learner"], r["hidden"]), []).append(r)
    for (learner, hidden), rows in series.items():
        mb = [r["temp_bytes"] / 1e6 for r in rows]
        growth = mb[-1] / mb[0] if mb[0] else float("inf")
        table.add_row(learner, str(hidden), *(f"{v:.3g}" for v in mb), f"{growth:.3g}x")
    _stdout_console().print(table)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for (learner, hidden), rows in series.items():
            label = learner if len(args.hidden) == 1 else f"{learner}, n={hidden}"
            ax.plot(
                [r["T"] for r in rows],
                [r["temp_bytes"] / 1e6 for r in rows],
                "o-",
                label=label,
            )
        ax.set(
            xscale="log", yscale="log", xlabel="sequence length T", ylabel="working memory (MB)"
        )
        ax.set_title(f"{args.cell}, batch {args.batch}: memory against T")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)


def _noise(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .bench.noise import noise_study, plot_noise

    err = Console(stderr=True)
    try:
        _check_names(args.learners, args.cells)
    except ValueError as exc:
        _print_error(err, "noise", exc)
        return 2
    if not _check_outputs(args, err, "noise"):
        return 2
    total = len(args.cells) * len(args.lengths) * len(args.learners)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("noise study", total=total)
        records = noise_study(
            args.cells,
            args.learners,
            args.lengths,
            hidden=args.hidden,
            samples=args.samples,
            seed=args.seed,
            on_result=lambda r: bar.update(
                task, advance=1, description=f"{r['learner']} on {r['cell']}, T={r['T']}"
            ),
        )
    for cell in args.cells:
        table = Table(
            title=f"{cell}, n={args.hidden}",
            caption="normalised variance E|g - g*|² / |g*|² (mean cosine with BPTT)",
        )
        table.add_column("learner")
        for steps in args.lengths:
            table.add_column(f"T={steps}", justify="right")
        for name in args.learners:
            cells = []
            for steps in args.lengths:
                r = next(
                    r
                    for r in records
                    if r["cell"] == cell and r["T"] == steps and r["learner"] == name
                )
                if r["status"] != "ok":
                    cells.append("[dim]unsupported[/]")
                else:
                    cells.append(f"{r['normalised_variance']:.3g} ({r['cosine']:.3f})")
            table.add_row(name, *cells)
        _stdout_console().print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": vars(args), "results": records}, fh, indent=2, default=str)
    if args.plot:
        plot_noise(records, args.plot)
        err.print(f"plot written to {args.plot}")
    return 0


def entry() -> None:
    """The ``rtrlx`` console script: :func:`main`, then the process's exit.

    A run stopped by Ctrl-C or ``kill`` while a chunk was computing has saved its checkpoint
    and result, but the chunk runs on in XLA's threads and a normal exit would wait for it
    (a PTB chunk of OK(8) takes minutes): then the process leaves at once, its output flushed.
    """
    code = main()
    driver = sys.modules.get("rtrlx.driver")  # not imported: nothing ran, nothing abandoned
    if driver is not None and driver.abandoned_work():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rtrlx`` command (returns its exit code; see :func:`entry`)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:  # one not handled by the command: no traceback for a Ctrl-C
        print(f"rtrlx {args.command}: interrupted (Ctrl-C).", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    """The command ``args`` names."""
    if args.command == "check":
        return _check(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "noise":
        return _noise(args)
    if args.command == "train":
        return _train(args)
    if args.command == "compare":
        return _compare(args)
    if args.command == "recipes":
        return _recipes(args)
    if args.command == "ea":
        from ._cli_ea import run_ea

        return run_ea(args, _check_output, _escape, _stdout_console)
    if args.command == "rl":
        return _rl(args)
    if args.command == "lm":
        from ._cli_lm import run_lm

        return run_lm(args, _drive_from_cli)
    if args.command == "sweep":
        from ._cli_sweep import run_sweep

        return run_sweep(args, _check_output, _escape, _stdout_console)
    if args.command == "sample":
        from ._cli_lm import run_sample

        return run_sample(args)
    raise AssertionError(args.command)  # pragma: no cover


if __name__ == "__main__":
    entry()
