"""Speed measurements: learners against BPTT on the same cell, batch and sequence."""

from .flops import influence_flops as influence_flops
from .flops import matmul_rate as matmul_rate
from .flops import xla_flops as xla_flops
from .speed import SpeedResult as SpeedResult
from .speed import compiled_memory as compiled_memory
from .speed import resolve_learner as resolve_learner
from .speed import time_per_step as time_per_step
