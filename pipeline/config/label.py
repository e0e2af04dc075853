"""The ``label`` section: the column, the task and the task's own keys."""

from __future__ import annotations

from features import task as task_lib
from features.task import Label
from pipeline.config import model
from pipeline.config.errors import Reader

# The keys that only some tasks take; the rest (types, task and transform names) is model.Label's.
TASK_KEYS = {task_lib.BINARY: {"positive_when", "positive_class"}, task_lib.MULTICLASS: set(),
             task_lib.REGRESSION: {"transform"}}


def parse_label(r: Reader, m: model.Label) -> Label:
    """The label section: the column, the task and the task's own keys."""
    task = m.task
    for key in ("positive_when", "positive_class", "transform"):
        if key in r.data and key not in TASK_KEYS[task]:
            raise r.fail(f"'{key}' does not apply to task {task}", key)
    name = m.name if m.name is not None else f"{m.column}_label"
    if task == task_lib.BINARY:
        if (m.positive_when is None) == (m.positive_class is None):
            raise r.fail("binary_classification needs exactly one of positive_when (a numeric rule) or "
                         "positive_class (the value of the column that is positive)")
        if m.positive_class is not None:
            return Label(name, m.column, task, positive_class=task_lib.token(m.positive_class))
        pos = m.positive_when
        if (pos.greater_than_column is None) == (pos.greater_than is None):
            raise r.child("positive_when").fail("give exactly one of greater_than_column or greater_than")
        return Label(name, m.column, task, greater_than_column=pos.greater_than_column, factor=float(pos.factor),
                     greater_than=None if pos.greater_than is None else float(pos.greater_than))
    return Label(name, m.column, task, transform=m.transform or "none")
