"""The ``label`` section: the column, the task and the task's own keys."""

from __future__ import annotations

from features import task as task_lib
from features.task import Label
from pipeline.config.errors import Reader

TASKS = task_lib.TASKS


def parse_label(r: Reader) -> Label:
    """The label section: the column, the task and the task's own keys."""
    column = r.get("column", (str,))
    task = r.get("task", (str,), task_lib.BINARY,
                 check=lambda v: None if v in TASKS else f"must be one of {', '.join(TASKS)}")
    own = {task_lib.BINARY: {"positive_when", "positive_class"}, task_lib.MULTICLASS: set(),
           task_lib.REGRESSION: {"transform"}}[task]
    for key in ("positive_when", "positive_class", "transform"):
        if key in r.data and key not in own:
            raise r.fail(f"'{key}' does not apply to task {task}", key)
    name = r.get("name", (str,), f"{column}_label")
    if task == task_lib.BINARY:
        if ("positive_when" in r.data) == ("positive_class" in r.data):
            raise r.fail("binary_classification needs exactly one of positive_when (a numeric rule) or "
                         "positive_class (the value of the column that is positive)")
        if "positive_class" in r.data:
            value = r.data["positive_class"]
            if isinstance(value, bool):
                raise r.fail("YAML reads an unquoted yes/no/true/false as a boolean: quote the class, e.g. "
                             "positive_class: \"yes\"", "positive_class")
            r.get("positive_class", (str, int))
            return Label(name, column, task, positive_class=task_lib.token(value))
        pos = r.child("positive_when")
        gt_col = pos.get("greater_than_column", (str,), None)
        factor = float(pos.get("factor", (int, float), 1.0))
        gt = pos.get("greater_than", (int, float), None)
        if (gt_col is None) == (gt is None):
            raise pos.fail("give exactly one of greater_than_column or greater_than")
        return Label(name, column, task, greater_than_column=gt_col, factor=factor,
                     greater_than=None if gt is None else float(gt))
    transform = r.get("transform", (str,), "none", lambda v: None if v in task_lib.TARGET_TRANSFORMS
                      else f"must be one of {', '.join(task_lib.TARGET_TRANSFORMS)}")
    return Label(name, column, task, transform=transform)
