"""Data streams for online learning, generated in JAX (no download).

``rtrlx.tasks.make(name, **params) -> (task, params)``, in the manner of gymnax.
"""

from typing import Any

from ._base import Task as Task
from .adding import Adding as Adding
from .adding import AddingParams as AddingParams
from .classify import Classification as Classification
from .classify import ClassificationParams as ClassificationParams
from .classify import ListOpsParams as ListOpsParams
from .classify import PixelParams as PixelParams
from .classify import listops_examples as listops_examples
from .copy import Copy as Copy
from .copy import CopyCurriculum as CopyCurriculum
from .copy import CopyCurriculumParams as CopyCurriculumParams
from .copy import CopyParams as CopyParams
from .copy import copy_stream as copy_stream
from .copy_ok import CopyOK as CopyOK
from .copy_ok import CopyOKParams as CopyOKParams
from .influence import InfluenceBalancing as InfluenceBalancing
from .influence import InfluenceCell as InfluenceCell
from .influence import InfluenceParams as InfluenceParams
from .ptb import PTBChar as PTBChar
from .ptb import PTBParams as PTBParams

#: Every task by name: (task class, parameter class).
TASKS: dict[str, tuple[type[Task], type[Any]]] = {
    "copy-curriculum": (CopyCurriculum, CopyCurriculumParams),
    "copy-ok": (CopyOK, CopyOKParams),
    "copy": (Copy, CopyParams),
    "adding": (Adding, AddingParams),
    "ptb-char": (PTBChar, PTBParams),
    "influence-balancing": (InfluenceBalancing, InfluenceParams),
    "listops": (Classification, ListOpsParams),
    "pixel": (Classification, PixelParams),
}


def make(name: str, **params: Any) -> tuple[Task, Any]:
    """A task and its parameters, by name.

    Args:
        name: one of :data:`TASKS`.
        **params: overrides of the task's parameters (fields of its ``...Params``).

    Returns:
        ``(task, params)``.

    Raises:
        ValueError: for an unknown task or parameter, listing the valid ones, or a
            parameter value of the wrong kind, out of range, or inconsistent with another
            (the message names the task, the parameter, the value and the valid values).

    Examples:
        >>> task, params = make("adding", length=30)
        >>> params.length
        30
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}.")
    task_cls, params_cls = TASKS[name]
    fields = params_cls._fields
    for key in params:
        if key not in fields:
            raise ValueError(
                f"task {name!r} has no parameter {key!r}; its parameters: {', '.join(fields)}."
            )
    if name == "listops":
        from .classify import make_listops

        return make_listops(**params)
    if name == "pixel":
        from .classify import make_pixel

        return make_pixel(**params)
    checked = params_cls.checked(**params)
    if name == "copy":
        return Copy(symbols=checked.symbols), checked
    return task_cls(), checked
