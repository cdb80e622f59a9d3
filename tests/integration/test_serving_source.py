"""The service's model source against a real MLflow store: it loads what the `champion` alias
names, follows the alias when it moves, and refuses a version whose graph does not match its
registered checksum while the version before it keeps serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.evaluate.graphs import sha256
from components.serving.source import ModelSource
from model_registry.audit import AuditLog
from model_registry.guard import restore_release
from model_registry.names import DETECTOR, TAG_STAGE
from model_registry.releases import Releases
from tests.graphs import detector_graph, detector_registry, register_detector

pytestmark = pytest.mark.integration


def test_the_source_follows_the_alias_and_refuses_a_graph_that_does_not_match(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = detector_registry(uri, monkeypatch)
    graph = detector_graph(tmp_path / "detector.onnx",
                            np.array([[32], [32], [8], [8], [0.9], [0.0]], np.float32))
    good = register_detector(client, uri, graph, sha256(graph))
    tampered = register_detector(client, uri, graph, "f" * 64)
    source = ModelSource(uri, tmp_path / "cache", grader="card-grader")

    assert source.refresh().detector is None  # nothing is champion yet

    client.set_registered_model_alias(DETECTOR, "champion", good)
    served = source.refresh()
    assert served.detector.version == int(good) and served.champion is None
    assert served.detector.detect([np.zeros((64, 64, 3), np.uint8)])[0][0].label == "scratch"

    client.set_registered_model_alias(DETECTOR, "champion", tampered)
    served = source.refresh()
    assert served.detector.version == int(good)  # the verified version keeps serving
    assert "differs from the registered" in source.problems["detector"]

    client.set_registered_model_alias(DETECTOR, "champion", good)
    assert source.refresh().detector.version == int(good) and source.problems == {}


def test_a_guarded_source_serves_the_audited_champion_when_the_alias_is_moved_by_hand(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = detector_registry(uri, monkeypatch)
    graph = detector_graph(tmp_path / "detector.onnx",
                           np.array([[32], [32], [8], [8], [0.9], [0.0]], np.float32))
    released, unreleased = (register_detector(client, uri, graph, sha256(graph))
                            for _ in range(2))
    for version in (released, unreleased):
        client.set_model_version_tag(DETECTOR, version, TAG_STAGE, "candidate")
        client.set_model_version_tag(DETECTOR, version, "gate.recall", "pass")
    releases = Releases(uri, AuditLog(tmp_path / "audit.jsonl"))
    releases.crown(DETECTOR, int(released), "release-flow", "first", first=True)
    reports = []
    source = ModelSource(uri, tmp_path / "cache", grader="card-grader", releases=releases,
                         on_tamper=reports.append)
    assert source.refresh().detector.version == int(released) and not reports

    client.set_registered_model_alias(DETECTOR, "champion", unreleased)
    served = source.refresh()
    assert served.detector.version == int(released) and not reports  # maybe a step under way
    served = source.refresh()

    assert served.detector.version == int(released)  # never the hand-moved one
    assert "champion points at version" in source.problems[f"release of {DETECTOR}"]
    assert [report.found.champion for report in reports] == [int(unreleased)]
    source.refresh()
    assert len(reports) == 1  # told once per change, not at every refresh
    restore_release(releases, reports[0], actor="guard")
    assert source.refresh().detector.version == int(released) and source.problems == {}
