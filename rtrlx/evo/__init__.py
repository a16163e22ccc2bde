"""The (1+1) EA on linear functions with an unknown number of relevant bits (arXiv 1808.05566).

``rtrlx.evo.simulate(n, policy, runs, key=...)`` runs the EA on OneMax exactly and fast (it
skips ahead to the next generation that changes the string), thousands of runs as one
``vmap``; ``simulate_plain`` is the bit-by-bit algorithm on any linear function, the reference
it is checked against. The rate policies are in :mod:`rtrlx.evo.rates`: static rates, the
paper's optimal schedule ``1.5447 ln t / t`` and an adaptive rate; the static laws over scales
for an unknown ``n`` are in :mod:`rtrlx.evo.static_law`.
"""

from . import rates as rates
from .onemax import FUNCTIONS as FUNCTIONS
from .onemax import Result as Result
from .onemax import linear_weights as linear_weights
from .onemax import simulate as simulate
from .onemax import simulate_plain as simulate_plain
from .rates import Policy as Policy
from .rates import optimal_schedule_constants as optimal_schedule_constants
from .static_law import StaticLaw as StaticLaw
