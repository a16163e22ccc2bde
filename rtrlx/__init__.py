"""rtrlx: online gradients for recurrent networks in JAX.

One interface, ``Learner(init, step)``, for exact real-time recurrent learning, its
approximations and truncated BPTT; :func:`sequence_grads` runs any of them over a sequence.
"""

from . import cells as cells
from . import losses as losses
from . import models as models
from ._errors import NotOnlineError as NotOnlineError
from ._errors import RtrlxError as RtrlxError
from ._errors import ShapeError as ShapeError
from ._errors import UnsupportedCellError as UnsupportedCellError
from .compare import compare as compare
from .learners import Learner as Learner
from .learners import bptt as bptt
from .learners import diag_rtrl as diag_rtrl
from .learners import kf_rtrl as kf_rtrl
from .learners import ok as ok
from .learners import online_deep as online_deep
from .learners import rflo as rflo
from .learners import rtrl as rtrl
from .learners import snap as snap
from .learners import tbptt as tbptt
from .learners import uoro as uoro
from .sequence import sequence_grads as sequence_grads

__version__ = "0.1.0"


def __getattr__(name: str):
    # rtrlx.rl needs the [rl] extra: imported on first use, so that `import rtrlx` works on
    # the lean install and `rtrlx.rl` without the extra says which extra to install.
    if name == "rl":
        import importlib

        return importlib.import_module(".rl", __name__)
    raise AttributeError(f"module 'rtrlx' has no attribute {name!r}")
