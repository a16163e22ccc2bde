"""Partially observable environments in JAX, gymnax-style: ``rtrlx.rl.make(name)``.

Needs rtrlx's ``[rl]`` extra (``pip install 'rtrlx[rl]'``), which brings gymnax.
"""

# ruff: noqa: E402  (the extra is checked before the modules that need it are imported)
from .._extras import check_installed

check_installed("gymnax", "rtrlx.rl")


from ._base import Environment as Environment
from ._registry import ENVIRONMENTS as ENVIRONMENTS
from ._registry import make as make
from .actor_critic import ACConfig as ACConfig
from .actor_critic import actor_critic as actor_critic
from .conditioning import TraceConditioning as TraceConditioning
from .conditioning import TracePatterning as TracePatterning
from .conditioning import return_error as return_error
from .control import CONTROL as CONTROL
from .control import GymnaxControl as GymnaxControl
from .core import Agent as Agent
from .popgym import Autoencode as Autoencode
from .popgym import CountRecall as CountRecall
from .popgym import HigherLower as HigherLower
from .popgym import RepeatFirst as RepeatFirst
from .popgym import RepeatPrevious as RepeatPrevious
from .ppo import PPOConfig as PPOConfig
from .ppo import ppo as ppo
from .run import RLConfig as RLConfig
from .run import train as train
