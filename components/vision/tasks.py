"""Task types as plugins. Every stage keeps its own plugins in a mapping keyed by task type (ingest
its label rules, training its recipe, evaluation its judge, serving its model runner) and finds
the one for a task here, so no stage and no flow branches on a task's name, and adding a task
type is one plugin per stage that handles it.

    kind = plugin_for(TASKS, "segment", "ingest")       # ingest's label rules for segment
    plugin_for(RECIPES, "segment", "training")          # UnsupportedTask: training handles ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

# Every task type the platform knows; a stage handles some of them.
TASK_TYPES = ("grade", "detect", "segment", "classify")

Plugin = TypeVar("Plugin")


class UnsupportedTask(ValueError):
    """A task type nobody knows, or one this stage has no plugin for."""


def plugin_for(plugins: Mapping[str, Plugin], task: str, stage: str) -> Plugin:
    """The `stage`'s plugin for `task`; UnsupportedTask naming what it does handle."""
    if task not in TASK_TYPES:
        raise UnsupportedTask(f"unknown task {task!r}; the task types are "
                              f"{', '.join(TASK_TYPES)}")
    if task not in plugins:
        raise UnsupportedTask(f"{stage} has no plugin for the {task} task; it handles "
                              f"{', '.join(plugins)}")
    return plugins[task]
