"""The errors rtrlx raises. Each message names the problem and the fix."""


class RtrlxError(Exception):
    """Base class of every error rtrlx raises on purpose."""


class ShapeError(RtrlxError, ValueError):
    """Inputs, targets, cell and head do not fit together."""


class UnsupportedCellError(RtrlxError, TypeError):
    """A learner was given a cell whose structure it cannot exploit."""


class NotOnlineError(RtrlxError, TypeError):
    """A learner that needs the whole sequence was asked to stream."""


NON_FINITE_LOSS = (
    "rtrlx: the loss is not finite (NaN or inf). Check the inputs and targets for NaN/inf, "
    "lower the learning rate, or clip the gradients; the parameters that produced it are the "
    "ones you passed in."
)
