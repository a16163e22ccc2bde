"""Random-feedback local online learning (RFLO) for leaky tanh RNNs."""

from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import UnsupportedCellError
from .._types import State
from ..cells.elman import Elman
from ._base import (
    Learner,
    batch_init,
    check_cell,
    is_batched,
    map_batch,
    readout_batch,
    stream_keys_init,
)


class RFLOState(NamedTuple):
    """State of ``rflo()``."""

    hidden: State  # the state h_t; leaves (hidden,) or (batch, hidden)
    # The eligibility trace of [W, b]: trace[i, j] ~ d h_t[i] / d W~[i, j] (local terms only).
    trace: Float[Array, "... hidden hidden+input+1"]
    key: PRNGKeyArray  # the seed of the fixed feedback matrix; never split, never batched


def rflo_feedback(key: PRNGKeyArray, hidden: int, out: int, dtype) -> Array:
    """RFLO's fixed random feedback matrix ``(hidden, out)``, entries ``N(0, 1/hidden)``.

    It stands in for the transposed readout weights when the error is sent back to the units.

    Args:
        key: the learner's key (``state.key``).
        hidden: units.
        out: outputs of the head.
        dtype: float dtype.

    Returns:
        The matrix ``B``; the units' error signal is ``B @ dL/d(head output)``.
    """
    return jax.random.normal(key, (hidden, out), dtype) / jnp.sqrt(jnp.asarray(hidden, dtype))


def _check(cell) -> Elman:
    check_cell(cell, "rflo")
    if not isinstance(cell, Elman) or cell.density < 1.0:
        raise UnsupportedCellError(
            f"rflo: RFLO is the local rule of a dense leaky tanh RNN, "
            f"rtrlx.cells.Elman(..., alpha=...) with density=1; got {type(cell).__name__}"
            + (" with a sparse mask" if isinstance(cell, Elman) else "")
            + ". For other cells use rtrlx.snap(1) (also local and biased), rtrlx.uoro() or "
            "rtrlx.kf_rtrl() (unbiased)."
        )
    return cell


def rflo(feedback: Literal["random", "exact"] = "random") -> Learner:
    """RFLO: the leak-only eligibility trace of a leaky RNN, with random error feedback.

    For ``h' = (1 - α) h + α tanh(z)``, ``z = W [h; x] + b``, RFLO drops the recurrent
    weights from the influence update and keeps only the leak, so each weight has one
    local eligibility trace: ``B_ij <- (1 - α) B_ij + α tanh'(z_i) [h; x; 1]_j``
    (O(n^2) per step). The gradient is ``q_i B_ij``, where the units' error ``q`` is sent
    back through a fixed random matrix (``feedback="random"``, Murray's rule) or through
    the head itself (``feedback="exact"``, the "local" half of the approximation alone).
    It is biased; the noise study (``rtrlx noise``) measures how much. In Marschall et al.'s
    taxonomy it is the past-facing, approximate-influence algorithm with ``J_h``
    replaced by its leak ``(1 - α) I``.

    Args:
        feedback: ``"random"`` (a fixed ``N(0, 1/n)`` matrix from the learner's key,
            :func:`rflo_feedback`) or ``"exact"`` (``dL/dh`` through the head).

    Returns:
        A :class:`Learner` for dense :class:`rtrlx.cells.Elman` cells.

    Raises:
        ValueError: for an unknown ``feedback``.
        UnsupportedCellError: from ``init``/``step`` on any other cell.

    Examples:
        >>> import jax, jax.numpy as jnp, equinox as eqx, rtrlx
        >>> cell = rtrlx.cells.Elman(2, 8, alpha=0.5, key=jax.random.key(0))
        >>> head = eqx.nn.Linear(8, 1, key=jax.random.key(1))
        >>> loss, grads = rtrlx.sequence_grads(
        ...     rtrlx.rflo(), cell, head, rtrlx.losses.mse, jnp.ones((5, 2)), jnp.zeros((5, 1)))

    References:
        Murray. Local online learning in recurrent networks with random feedback. eLife
        2019. https://doi.org/10.7554/eLife.43299

        Marschall, Cho, Savin. A Unified Framework of Online Learning Algorithms for
        Training Recurrent Neural Networks. JMLR 2020. https://arxiv.org/abs/1907.02649
    """
    if feedback not in ("random", "exact"):
        raise ValueError(f"rflo(feedback=...): expected 'random' or 'exact', got {feedback!r}.")

    def init(cell, *, key=None, batch_size=None):
        cell = _check(cell)
        cols = cell.hidden_size + cell.input_size + 1

        def make():
            return cell.init_state(), jnp.zeros((cell.hidden_size, cols), cell.weight.dtype)

        hidden, trace = batch_init(cell, batch_size, make)
        if key is None and feedback == "random":
            # One key for every stream: the feedback matrix is shared, never split.
            key = stream_keys_init(None, None, "rflo")
        return RFLOState(hidden, trace, jax.random.key(0) if key is None else key)

    def step(cell, head, loss_fn, state: RFLOState, x, y):
        cell = _check(cell)
        batched = is_batched(cell, state.hidden, x, "rflo", head=head, y=y)
        alpha = cell.alpha

        def one(hidden, trace, x):
            a = jnp.concatenate([hidden, x, jnp.ones((1,), x.dtype)])
            (z,) = cell.preactivations(hidden, x)
            slope = 1 - jnp.tanh(z) ** 2
            trace = (1 - alpha) * trace + alpha * slope[:, None] * a[None, :]
            return cell(hidden, x), trace

        hidden, trace = map_batch(one, batched, state.hidden, state.trace, x)
        loss, g_direct, g_head, delta = readout_batch(cell, head, loss_fn, hidden, y, batched)
        q = delta[..., 0, :]  # dL/dh, (n,) or (batch, n), with the batch mean's 1/B
        if feedback == "random":
            # The error at the head's output, dL/d(out), sent back through the fixed matrix.
            def outputs(h):
                return head(cell.features(h))

            error = jax.grad(loss_fn)
            if batched:
                outs = jax.vmap(outputs)(hidden)
                errors = jax.vmap(error)(outs, y) / outs.shape[0]
            else:
                outs = outputs(hidden)
                errors = error(outs, y)
            matrix = rflo_feedback(state.key, cell.hidden_size, outs.shape[-1], outs.dtype)
            q = errors @ matrix.T
        g = q[..., :, None] * trace
        if batched:
            g = jnp.sum(g, axis=0)
        cols = cell.hidden_size + cell.input_size
        g_cell = eqx.tree_at(
            lambda c: (c.weight, c.bias),
            g_direct,
            (g_direct.weight + g[:, :cols], g_direct.bias + g[:, cols]),
        )
        return RFLOState(hidden, trace, state.key), loss, (g_cell, g_head)

    return Learner(init=init, step=step, name="rflo" if feedback == "random" else "rflo:exact")
