"""Built-in training tasks behind one small interface (:class:`Task`).

``get_task(name)`` returns a fresh task; ``TASKS`` lists the names ``--task`` takes.
The CSV pipeline (``--csv``) is :class:`rnnx.training.tasks.csv.CsvTask`.
"""

from __future__ import annotations

from collections.abc import Callable

from rnnx.errors import ConfigError
from rnnx.task_names import TASKS
from rnnx.training.tasks.base import Split, Task, TaskData


def _registry() -> dict[str, Callable[[], Task]]:
    """Each built-in task class under its own ``name``."""
    from rnnx.training.tasks.blobs import BlobsTask
    from rnnx.training.tasks.chars import CharsTask
    from rnnx.training.tasks.forecast import ForecastTask
    from rnnx.training.tasks.sine import SineTask

    return {cls.name: cls for cls in (SineTask, CharsTask, ForecastTask, BlobsTask)}


def get_task(name: str) -> Task:
    """A new task object by name.

    Raises:
        ConfigError: unknown name (the valid ones are listed).
    """
    if name not in TASKS:
        raise ConfigError(f"--task: expected one of {', '.join(TASKS)}, got {name!r}")
    return _registry()[name]()


__all__ = ["TASKS", "Split", "Task", "TaskData", "get_task"]
