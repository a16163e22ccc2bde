"""A sweep's specification: which command, which fixed flags, which axes, which metric.

A sweep is written as a TOML (or YAML) file, or as flags of ``rtrlx sweep``::

    command = "train"            # train, rl or lm: commands that run on rtrlx's run driver
    metric = "T_"                # optional: the task's headline metric by default
    samples = 4                  # draws of the [random] axes (per point of the grid)
    [args]                       # flags every trial gets
    task = "copy-curriculum"
    steps = 20000
    [grid]                       # every combination of these
    learner = ["rtrl", "kf_rtrl", "uoro"]
    seed = [0, 1, 2]
    [random]                     # drawn, once per sample, the same for every seed
    lr = {loguniform = [1e-4, 1e-2]}

A name is a flag of the command (``update_every`` or ``update-every`` is ``--update-every``;
``task-param.max_length`` is ``--task-param max_length=VALUE``). ``seed`` is the axis the
results are averaged over: every configuration is the same point without its seed.

The random axes are drawn here, from ``sample_seed``, before the sweep starts, so every seed
of a configuration shares its draw and a resumed sweep has the same points.
"""

import dataclasses
import itertools
import math
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import numpy as np

#: The commands a trial can run (they run on rtrlx's run driver and write result.json).
COMMANDS = ("train", "rl", "lm")
#: Flags the sweep sets itself for each trial.
RESERVED = ("out", "resume", "overwrite")
#: ``name.KEY = value`` axes: the flag they become (``--task-param KEY=value``).
KEYED_FLAGS = ("task-param", "agent-param")
#: Distributions of a random axis: name -> number of arguments.
DISTRIBUTIONS = {"loguniform": 2, "uniform": 2, "randint": 2, "choice": None}
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
#: The axis averaged over: configurations are points without it.
SEED = "seed"


class SpecError(ValueError):
    """A sweep specification that cannot be run, with what to change."""


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: one command over the points of its axes.

    Attributes:
        command: ``"train"``, ``"rl"`` or ``"lm"``.
        args: the flags every trial gets (name -> value; a list repeats the flag).
        grid: axes whose every combination runs (name -> values).
        random: axes drawn ``samples`` times per grid point (name -> ``{"loguniform":
            [low, high]}``, ``{"uniform": [low, high]}``, ``{"randint": [low, high]}``
            (high excluded) or ``{"choice": [values]}``).
        samples: draws of the random axes (1 when there are none).
        metric: the metric reported and ranked (None: the command's headline metric).
        mode: ``"max"`` or ``"min"`` (None: the metric's own direction).
        sample_seed: the seed of the random axes' draws.
        asha: ASHA early stopping, or None: ``{"grace": steps, "reduction": factor,
            "max": steps}`` (``max`` defaults to ``args["steps"]``).

    Examples:
        >>> grid = {"learner": ["rtrl", "uoro"], "seed": [0, 1]}
        >>> spec = SweepSpec("train", {"steps": 100}, grid)
        >>> [p["learner"] + str(p["seed"]) for p in spec.points()]
        ['rtrl0', 'rtrl1', 'uoro0', 'uoro1']
        >>> trial_argv(spec, spec.points()[0], "runs/t0")
        ['train', '--steps', '100', '--learner', 'rtrl', '--seed', '0', '--out', 'runs/t0']
    """

    command: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    random: dict[str, dict[str, list[Any]]] = dataclasses.field(default_factory=dict)
    samples: int = 1
    metric: str | None = None
    mode: str | None = None
    sample_seed: int = 0
    asha: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise SpecError(
                f"command {self.command!r} cannot be swept; valid: {', '.join(COMMANDS)} "
                "(compare's runs are train runs with a learner axis)."
            )
        if self.mode not in (None, "max", "min"):
            raise SpecError(f"mode {self.mode!r}: use 'max' or 'min'.")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise SpecError(f"samples = {self.samples!r}: give a positive integer.")
        for section in ("args", "grid", "random"):
            for name in getattr(self, section):
                _check_name(name, section)
        both = set(map(setting, self.grid)) & set(map(setting, self.random))
        both |= set(map(setting, self.args)) & set(map(setting, [*self.grid, *self.random]))
        if both:
            raise SpecError(f"{', '.join(sorted(both))}: set in two places; keep one.")
        for name, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise SpecError(f"grid axis {name!r}: give a non-empty list of values.")
        for name, dist in self.random.items():
            _check_distribution(name, dist)
        if self.asha is not None:
            _check_asha(self.asha, self.args, self.command)

    @property
    def axes(self) -> list[str]:
        """The swept names, grid first, in the spec's order."""
        return [*self.grid, *self.random]

    def points(self) -> list[dict[str, Any]]:
        """Every trial's axis values: the grid's combinations times the random draws.

        Seeds vary fastest, so a configuration's seeds are neighbours; each draw of the
        random axes is shared by the seeds of its configuration.
        """
        rng = np.random.default_rng(self.sample_seed)
        names = [n for n in self.grid if n != SEED]
        seeds = self.grid.get(SEED, [None])
        out = []
        for combination in itertools.product(*(self.grid[n] for n in names)):
            for _ in range(self.samples if self.random else 1):
                drawn = {n: _draw(rng, d) for n, d in self.random.items()}
                for seed in seeds:
                    point = dict(zip(names, combination, strict=True)) | drawn
                    out.append(point if seed is None else point | {SEED: seed})
        return out

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain data (saved beside the sweep; :func:`from_dict` reads it)."""
        return dataclasses.asdict(self)


def from_dict(data: Mapping[str, Any]) -> SweepSpec:
    """A spec from a parsed TOML/YAML document, refusing unknown keys by name."""
    fields = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = set(data) - fields
    if unknown:
        raise SpecError(
            f"unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}."
        )
    if "command" not in data:
        raise SpecError(f"the spec names no command; add command = one of {', '.join(COMMANDS)}.")
    values: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    return SweepSpec(**values)


def load(path: str) -> SweepSpec:
    """Read a spec from a ``.toml`` file, or ``.yaml``/``.yml`` (PyYAML, which Ray brings).

    Raises:
        SpecError: unreadable file, bad syntax (with the parser's words) or bad content.
    """
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc}).") from exc
    try:
        if path.endswith((".yaml", ".yml")):
            from .._extras import require

            data = _numbers(require("yaml", "a YAML sweep spec").safe_load(text))
        else:
            data = tomllib.loads(text.decode())
    except ImportError:
        raise
    except Exception as exc:
        raise SpecError(f"{path}: not a valid spec file: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: the spec must be a table of keys (command, args, grid, ...).")
    return from_dict(data)


def _numbers(data: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as text: every string that is a number becomes one."""
    if isinstance(data, dict):
        return {k: _numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_numbers(v) for v in data]
    if isinstance(data, str) and _FLOAT.fullmatch(data.strip()):
        return float(data)
    return data


def parse_value(text: str) -> Any:
    """A flag's text as the value it means: int, float, true/false, or the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def trial_argv(spec: SweepSpec, point: Mapping[str, Any], out: str) -> list[str]:
    """The command line of one trial: the command, its flags, ``--out``."""
    argv = [spec.command]
    for name, value in [*spec.args.items(), *point.items()]:
        argv += _flag_args(name, value)
    given = {setting(n) for n in [*spec.args, *point]}
    if spec.command == "rl" and "seeds" not in given:
        argv += ["--seeds", "1"]  # one seed per trial: the sweep's seed axis gives the others
    return [*argv, "--out", out]


def config_key(point: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The configuration a point belongs to: its axis values without the seed."""
    return tuple((k, v) for k, v in point.items() if k != SEED)


def setting(name: str) -> str:
    """The setting a name stands for (``update_every`` is ``update-every``).

    ``task-param.length`` and ``task_param.length`` are one setting; two task parameters are
    two.
    """
    flag, dot, key = name.partition(".")
    return flag.replace("_", "-") + dot + key


def _flag(name: str) -> str:
    return name.partition(".")[0].replace("_", "-")


def _flag_args(name: str, value: Any) -> list[str]:
    if isinstance(value, list):
        return [a for v in value for a in _flag_args(name, v)]
    if "." in name:
        flag, key = name.split(".", 1)
        return [f"--{flag.replace('_', '-')}", f"{key}={value}"]
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return [flag] if value else []
    return [flag, str(value)]


def _check_name(name: str, section: str) -> None:
    flag = _flag(name)
    if flag in RESERVED:
        raise SpecError(
            f"[{section}] {name}: the sweep sets --{flag} for each trial (rtrlx sweep --out "
            "names the sweep's directory); remove it."
        )
    if "." in name and flag not in KEYED_FLAGS:
        raise SpecError(
            f"[{section}] {name}: only {', '.join(k + '.NAME' for k in KEYED_FLAGS)} take a "
            "dotted name."
        )


def _check_distribution(name: str, dist: Any) -> None:
    if not isinstance(dist, Mapping) or len(dist) != 1:
        raise SpecError(
            f"random axis {name!r}: give one distribution, e.g. {{loguniform = [1e-4, 1e-2]}}; "
            f"valid: {', '.join(DISTRIBUTIONS)}."
        )
    ((kind, params),) = dist.items()
    if kind not in DISTRIBUTIONS:
        raise SpecError(
            f"random axis {name!r}: unknown distribution {kind!r}; valid: "
            f"{', '.join(DISTRIBUTIONS)}."
        )
    if not isinstance(params, list) or not params:
        raise SpecError(f"random axis {name!r}: {kind} needs a list of arguments.")
    if kind == "choice":
        return
    if len(params) != 2 or not all(isinstance(p, int | float) for p in params):
        raise SpecError(f"random axis {name!r}: {kind} needs [low, high], two numbers.")
    low, high = params
    if not low < high:
        raise SpecError(f"random axis {name!r}: {kind} needs low < high, got {params}.")
    if kind == "loguniform" and low <= 0:
        raise SpecError(f"random axis {name!r}: loguniform needs low > 0, got {low}.")


def _check_asha(asha: Mapping[str, Any], args: Mapping[str, Any], command: str) -> None:
    unknown = set(asha) - {"grace", "reduction", "max"}
    if unknown:
        raise SpecError(
            f"asha: unknown key(s) {', '.join(sorted(unknown))}; valid: grace, reduction, max."
        )
    for key, value in asha.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"asha: {key} = {value!r} must be a number.")
    length = "windows" if command == "lm" else "steps"
    grace = asha.get("grace", 1)
    most = asha.get("max", args.get(length))
    if most is None:
        raise SpecError(f"asha needs max (the run's length), or {length} in [args].")
    if not 0 < grace < most:
        raise SpecError(f"asha: grace = {grace} must be above 0 and below max = {most}.")
    if asha.get("reduction", 3) <= 1:
        raise SpecError("asha: reduction must be above 1 (3 keeps a third at each rung).")


def _draw(rng: np.random.Generator, dist: Mapping[str, list[Any]]) -> Any:
    ((kind, params),) = dist.items()
    if kind == "choice":
        return params[int(rng.integers(len(params)))]
    low, high = params
    if kind == "randint":
        return int(rng.integers(int(low), int(high)))
    if kind == "uniform":
        return float(rng.uniform(low, high))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))
