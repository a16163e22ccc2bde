"""Evolution strategies: gradient estimates from function evaluations only.

:mod:`rtrlx.es.estimators` holds the estimators as values (``init`` / ``estimate``, the PRNG
key in the state): plain antithetic ES, ES with past descent directions (arXiv 1910.05268)
and Guided ES with the previous estimate as its surrogate.
"""

from .estimators import ESState as ESState
from .estimators import Estimator as Estimator
from .estimators import antithetic as antithetic
from .estimators import guided as guided
from .estimators import past_descent as past_descent
