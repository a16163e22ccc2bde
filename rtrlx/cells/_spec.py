"""Cells by their command-line names, composites included (``fs-lstm:2``, ``stacked-gru:3``)."""

import re
from typing import Any

from jaxtyping import PRNGKeyArray

from ._base import AbstractCell

_COMPOSITE = re.compile(r"^(fs|stacked)-([a-z-]+):(\d+)$")


def cell_names() -> str:
    """The valid ``--cell`` names, for error messages."""
    from . import CELLS, COMPOSITES

    plain = [name for name in CELLS if name not in COMPOSITES]
    return ", ".join(plain) + (
        ", fs-BLOCK:K (a Fast-Slow RNN of K fast cells, e.g. fs-lstm:2), "
        "stacked-BLOCK:L (L layers, e.g. stacked-lstm:2)"
    )


def check_cell_name(name: str) -> None:
    """Raise ``ValueError`` listing the valid names when ``name`` names no cell."""
    from . import CELLS, COMPOSITES

    match = _COMPOSITE.match(name)
    block = match.group(2) if match else name
    if block not in CELLS or block in COMPOSITES or (match and int(match.group(3)) < 1):
        raise ValueError(f"unknown cell {name!r}; valid cells: {cell_names()}.")


def build_cell(
    name: str,
    input_size: int,
    hidden: int,
    *,
    key: PRNGKeyArray,
    slow_size: int | None = None,
    zoneout: tuple[float, float] = (0.0, 0.0),
) -> AbstractCell:
    """A cell by its command-line name.

    Args:
        name: a name in ``rtrlx.cells.CELLS``, ``fs-BLOCK:K`` (a :class:`FSRNN` of ``K`` fast
            cells of type ``BLOCK``) or ``stacked-BLOCK:L`` (a :class:`Stacked` of ``L``).
        input_size: length of ``x``.
        hidden: units of the cell (of each fast cell; of each layer).
        key: PRNG key for the initial weights.
        slow_size: the slow cell's units (``fs-*`` only; default ``hidden``).
        zoneout: the ``(h, c)`` zoneout rates (``fs-*`` only).

    Returns:
        The cell.

    Raises:
        ValueError: an unknown name or block, or settings the cell does not take.

    Examples:
        >>> import jax
        >>> from rtrlx.cells import build_cell
        >>> build_cell("fs-lstm:2", 50, 32, slow_size=16, key=jax.random.key(0)).hidden_size
        48
    """
    from . import CELLS, COMPOSITES, FSRNN, Stacked

    match = _COMPOSITE.match(name)
    if match is None:
        if name not in CELLS or name in COMPOSITES:
            raise ValueError(f"unknown cell {name!r}; valid cells: {cell_names()}.")
        if slow_size is not None or any(zoneout):
            raise ValueError(f"slow size and zoneout apply to fs-* cells, not to {name!r}.")
        cls: Any = CELLS[name]
        return cls(input_size, hidden, key=key)
    kind, block, count = match.group(1), match.group(2), int(match.group(3))
    if kind == "fs":
        return FSRNN(
            input_size,
            hidden,
            slow_size=slow_size,
            k=count,
            cell=block,
            zoneout_h=zoneout[0],
            zoneout_c=zoneout[1],
            key=key,
        )
    if slow_size is not None or any(zoneout):
        raise ValueError(f"slow size and zoneout apply to fs-* cells, not to {name!r}.")
    return Stacked(input_size, hidden, layers=count, cell=block, key=key)
