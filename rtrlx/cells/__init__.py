"""Recurrent cells: equinox Modules with ``new_state = cell(state, x)``."""

from ._base import AbstractCell as AbstractCell
from ._base import KronFactor as KronFactor
from ._base import num_components as num_components
from ._base import state_to_units as state_to_units
from ._base import units_to_state as units_to_state
from .elman import Elman as Elman
from .elstm import ELSTM as ELSTM
from .fsrnn import FSRNN as FSRNN
from .gru import GRU as GRU
from .lnlstm import LNLSTM as LNLSTM
from .lru import LRU as LRU
from .lstm import LSTM as LSTM
from .rhn import RHN as RHN
from .rtu import RTU as RTU
from .stacked import Stacked as Stacked

#: Every cell, by its command-line name.
CELLS: dict[str, type[AbstractCell]] = {
    "elman": Elman,
    "gru": GRU,
    "lstm": LSTM,
    "rhn": RHN,
    "lru": LRU,
    "rtu": RTU,
    "elstm": ELSTM,
    "ln-lstm": LNLSTM,
    "fsrnn": FSRNN,
    "stacked": Stacked,
}
#: The cells made of other cells (their blocks are any of the others).
COMPOSITES = ("fsrnn", "stacked")

from ._spec import build_cell as build_cell  # noqa: E402
from ._spec import cell_names as cell_names  # noqa: E402
from ._spec import check_cell_name as check_cell_name  # noqa: E402
