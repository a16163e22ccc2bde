"""Sweeps over rtrlx's run commands on Ray Tune (the ``rtrlx[sweep]`` extra).

A sweep runs one command (``train``, ``rl`` or ``lm``) over the points of a grid and of
random axes, each point one Tune trial with its own run directory, on a local Ray instance
by default or on a cluster by its address; see :mod:`rtrlx.sweep.spec` for the spec and
:func:`rtrlx.sweep.run.sweep` for the run. Importing this package does not import Ray.

Examples:
    >>> from rtrlx.sweep import SweepSpec
    >>> spec = SweepSpec("train", {"steps": 200}, {"lr": [1e-3, 3e-3], "seed": [0, 1, 2]})
    >>> len(spec.points())
    6
"""

from .report import collect as collect
from .report import rebuild as rebuild
from .report import table as table
from .report import write as write
from .run import SweepError as SweepError
from .run import SweepPlan as SweepPlan
from .run import default_metric as default_metric
from .run import plan as plan
from .run import sweep as sweep
from .spec import SpecError as SpecError
from .spec import SweepSpec as SweepSpec
from .spec import from_dict as from_dict
from .spec import load as load
from .spec import parse_value as parse_value
from .spec import trial_argv as trial_argv
from .trial import TrialError as TrialError
from .trial import run_trial as run_trial
