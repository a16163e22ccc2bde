"""Gradient algorithms: one factory each, each returning a :class:`Learner`."""

from ._base import Learner as Learner
from ._elementwise import TraceState as TraceState
from ._kronecker import KroneckerState as KroneckerState
from ._registry import LEARNERS as LEARNERS
from ._registry import make as make
from ._registry import register as register
from .bptt import bptt as bptt
from .diag_rtrl import diag_rtrl as diag_rtrl
from .kf_rtrl import kf_rtrl as kf_rtrl
from .ok import ok as ok
from .online_deep import OnlineDeepState as OnlineDeepState
from .online_deep import online_deep as online_deep
from .online_deep import online_deep_approximations as online_deep_approximations
from .rflo import RFLOState as RFLOState
from .rflo import rflo as rflo
from .rflo import rflo_feedback as rflo_feedback
from .rtrl import RTRLState as RTRLState
from .rtrl import rtrl as rtrl
from .snap import SnApState as SnApState
from .snap import snap as snap
from .tbptt import TBPTTState as TBPTTState
from .tbptt import tbptt as tbptt
from .uoro import UOROState as UOROState
from .uoro import uoro as uoro
