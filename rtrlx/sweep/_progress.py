"""The Tune callback behind ``rtrlx sweep``'s progress bar (this module imports Ray).

Tune pickles its callbacks with the experiment's state, and a progress bar holds locks, so
the callback keeps a key into :data:`LISTENERS`, not the listener: the sweep's directory, so
a restored experiment (``--resume``) finds the listener of the call that restored it.
"""

from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from .trial import read_trial

#: The progress listeners of the sweeps running in this process, by sweep directory.
LISTENERS: dict[str, Callable[[str, int, dict], None]] = {}


class Progress(Callback):
    """Trial events passed on as ``LISTENERS[out](kind, index, metrics)``.

    ``kind`` is ``"result"`` (a report), ``"done"`` or ``"failed"`` (with the error that the
    trial wrote to its ``trial.json``).
    """

    def __init__(self, out: str) -> None:
        self.key = out
        self.out = out

    def _send(self, kind: str, index: int, metrics: dict) -> None:
        listener = LISTENERS.get(self.key)
        if listener is not None:
            listener(kind, index, metrics)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        """A trial reported its metric."""
        self._send("result", trial.config["index"], result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial ended without an error (done, or stopped by ASHA)."""
        self._send("done", trial.config["index"], trial.last_result or {})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed."""
        from .run import trial_dir

        index = trial.config["index"]
        record = read_trial(trial_dir(self.out, index)) or {}
        self._send("failed", index, {"error": record.get("error")})
