"""Task types as plugins: every stage finds its plugin for a task the same way, says clearly what
it handles when it has none, and holds plugins only for task types the platform knows."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.evaluate.tasks import EVALUATIONS
from components.ingest.tasks import TASKS
from components.serving.source import ModelSource
from components.train.recipes import RECIPES
from components.train.tasks import BACKBONE_TASKS
from components.vision.models import SERVED_MODELS, OnnxGrader
from components.vision.tasks import TASK_TYPES, UnsupportedTask, plugin_for
from model_registry.versions import RegisteredVersion

STAGE_PLUGINS = {"ingest": TASKS, "training": RECIPES, "backbone training": BACKBONE_TASKS,
                 "evaluation": EVALUATIONS, "serving": SERVED_MODELS}


def test_a_stage_finds_its_plugin_by_task_type() -> None:
    assert plugin_for(SERVED_MODELS, "grade", "serving") is OnnxGrader
    assert plugin_for(TASKS, "segment", "ingest").name == "segment"
    assert plugin_for(RECIPES, "detect", "training").warm_starts is False


def test_an_unknown_task_and_a_stage_without_its_plugin_are_named() -> None:
    with pytest.raises(UnsupportedTask, match="unknown task 'weld'; the task types are grade, "
                                              "detect, segment, classify"):
        plugin_for(TASKS, "weld", "ingest")
    with pytest.raises(UnsupportedTask, match="evaluation has no plugin for the classify task; "
                                              "it handles grade, detect"):
        plugin_for(EVALUATIONS, "classify", "evaluation")


@pytest.mark.parametrize("stage", sorted(STAGE_PLUGINS))
def test_every_stage_holds_plugins_of_known_task_types_and_handles_grading(stage: str) -> None:
    plugins = STAGE_PLUGINS[stage]

    assert set(plugins) <= set(TASK_TYPES)
    assert "grade" in plugins


def test_serving_refuses_a_version_of_another_task_type_before_downloading_it(
        tmp_path: Path) -> None:
    source = ModelSource("sqlite:///never-opened.db", tmp_path)
    classifier = RegisteredVersion("card-grader", 7, "run-7", "models:/m-7",
                                   {"task": "classify"})

    with pytest.raises(ValueError, match="it is a classify model, and this place serves grade"):
        source.graders.get(source.tracking_uri, tmp_path, classifier)
    assert list(tmp_path.iterdir()) == []
