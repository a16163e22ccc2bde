"""Learners by their command-line names: ``rtrl``, ``snap:1``, ``tbptt:5``, ..."""

from collections.abc import Callable

from ._base import Learner
from .bptt import bptt
from .diag_rtrl import diag_rtrl
from .es import es
from .kf_rtrl import kf_rtrl
from .ok import ok
from .online_deep import online_deep
from .rflo import rflo
from .rtrl import rtrl
from .snap import snap
from .tbptt import tbptt
from .uoro import uoro

#: name -> (factory, whether it takes an integer argument, what the argument is)
LEARNERS: dict[str, tuple[Callable[..., Learner], str | None]] = {
    "bptt": (bptt, None),
    "tbptt": (tbptt, "k, the truncation length"),
    "rtrl": (rtrl, None),
    "diag_rtrl": (diag_rtrl, None),
    "snap": (snap, "n, 1 or 2"),
    "uoro": (uoro, None),
    "kf_rtrl": (kf_rtrl, None),
    "ok": (ok, "rank, the number of Kronecker products kept"),
    "rflo": (rflo, None),
    "online_deep": (online_deep, "approx: full, snap1, truncated or spatial"),
    "es": (es, "pairs, antithetic pairs per 50-step window"),
    "es_pd": (
        lambda pairs: es(pairs, estimator="past_descent"),
        "pairs, antithetic pairs per 50-step window, the last estimate as surrogate",
    ),
}


def register(name: str, factory: Callable[..., Learner], takes: str | None = None) -> None:
    """Make a learner available by name to ``make`` and so to every command.

    Args:
        name: its command-line name (letters, digits and ``_``; no ``:``).
        factory: builds the learner; called with no argument, or with one integer when
            ``takes`` is given.
        takes: what the integer argument is, e.g. ``"k, the window length"``; None when the
            factory takes none.

    Raises:
        ValueError: for a malformed name, or one already registered.

    Examples:
        >>> import rtrlx
        >>> register("rtrl_again", rtrlx.rtrl)
        >>> make("rtrl_again").name
        'rtrl'
        >>> del LEARNERS["rtrl_again"]
    """
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"learner name {name!r}: use letters, digits and '_' only.")
    if name in LEARNERS:
        raise ValueError(f"learner {name!r} is already registered; pick another name.")
    LEARNERS[name] = (factory, takes)


def valid_names() -> str:
    """The accepted spellings, for error messages."""

    def spell(name: str, takes: str | None) -> str:
        if takes is None:
            return name
        if name == "online_deep":  # its argument is optional
            return f"{name}[:<{takes.split(':')[0]}>]"
        return f"{name}:<{takes.split(',')[0]}>"

    return ", ".join(spell(k, v) for k, (_, v) in LEARNERS.items())


def make(spec: str) -> Learner:
    """Build a learner from its name, e.g. ``make("snap:1")`` or ``make("tbptt:20")``.

    Args:
        spec: ``name`` or ``name:argument``.

    Returns:
        The :class:`Learner`.

    Raises:
        ValueError: for an unknown name or a bad argument, listing the valid choices.

    Examples:
        >>> make("tbptt:5").name
        'tbptt:5'
    """
    name, _, arg = spec.strip().partition(":")
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {spec!r}; valid learners: {valid_names()}.")
    factory, takes = LEARNERS[name]
    if takes is None:
        if arg:
            raise ValueError(f"learner {name!r} takes no argument, got {spec!r}.")
        return factory()
    if name == "online_deep":
        return factory(arg or "full")
    if not arg:
        arg = "1" if name == "snap" else ""
    try:
        value = int(arg)
    except ValueError:
        raise ValueError(
            f"learner {name!r} needs an integer argument ({takes}), e.g. {name}:1; got {spec!r}."
        ) from None
    return factory(value)
