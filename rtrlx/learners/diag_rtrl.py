"""Element-wise RTRL: exact and O(parameters) per step on cells with diagonal recurrence."""

from ._base import Learner
from ._elementwise import elementwise_rtrl


def diag_rtrl(*, chunk: int = 64) -> Learner:
    """Exact RTRL for cells whose recurrence is diagonal (LRU, RTU, ELSTM).

    When each unit's next state depends only on its own state, the influence of a parameter
    stays on the unit it drives, so the influence matrix has one non-zero block (of size
    ``S x S`` state components) per parameter. Keeping just those entries and updating them
    element-wise is exact RTRL at O(parameters) memory and time per step, the online learning
    of the LRU paper and the real-time learning of RTUs. A cell with dense recurrence is
    refused with an error that names ``snap(1)``, the same update used as an approximation.

    ``step`` streams, one step at a time. On a whole known sequence
    (:func:`rtrlx.sequence_grads`), a cell whose rule has a chunked form (the LRU) is run
    ``chunk`` steps at a time: the trace at each step is a decayed copy of the trace before
    the chunk plus a sum over the chunk's inputs, so the chunk's gradient and the trace after
    it come from a few GEMMs over (steps x batch) and one pass over the trace, instead of
    ``chunk`` element-wise passes. The numbers are the streaming path's; the memory grows
    with ``chunk``, not with the sequence.

    Args:
        chunk: steps per chunk of the whole-sequence path (>= 1).

    Returns:
        A :class:`Learner` exact on every cell it accepts.

    Raises:
        ValueError: for a ``chunk`` below 1.
        UnsupportedCellError: from ``init``/``step`` when ``cell.diagonal`` is False.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.LRU(2, 4, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(cell.output_size, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.diag_rtrl(), cell, head, rtrlx.losses.mse,
        ...     jnp.ones((5, 2)), jnp.zeros((5, 1)))

    References:
        Zucchet, Meier, Schug, Mujika, Sacramento. Online learning of long-range dependencies.
        NeurIPS 2023. https://arxiv.org/abs/2305.15947

        Elelimy, White, Bowling, White. Real-Time Recurrent Learning using Trace Units in
        Reinforcement Learning. NeurIPS 2024. https://arxiv.org/abs/2409.01449
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"diag_rtrl: chunk must be a positive int, got {chunk!r}.")
    return elementwise_rtrl("diag_rtrl", require_diagonal=True, chunk=chunk)
