"""The grading service and its HTTP API with stand-in models (no registry, no ONNX): routing by
release stage, the champion covering for a failing challenger, the prediction log's rows, and
the API's answers to bad uploads, overload and a missing champion."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from components.predlog import PredictionLog
from components.serving.app import create_app
from components.serving.keys import KeyStore, Role
from components.serving.metrics import ServiceMetrics
from components.serving.routing import answers_with_challenger
from components.serving.service import GradingService, NotReady, ServiceConfig
from components.serving.source import ServedModels
from components.thumbnails import thumbnail_path
from components.vision.models import GradeAnswer, GradedDefect, GraderInput


@dataclass
class StandInGrader:
    """Grades every photo `grade`; fails on every photo when `fails`; its batches (`gate`) or
    its preprocessing (`prepare_gate`) may block until released."""

    version: int
    grade_given: int = 7
    fails: bool = False
    gate: threading.Event | None = None
    prepare_gate: threading.Event | None = None
    model: str = "card-grader"
    data_version: str = "d1"
    batches: list[int] = field(default_factory=list)

    @property
    def preparation(self) -> Callable[[np.ndarray], GraderInput]:
        return self.prepare

    def prepare(self, bgr: np.ndarray) -> GraderInput:
        if self.prepare_gate is not None:
            self.prepare_gate.wait(timeout=10)
        return GraderInput(np.zeros((8, 8, 3), np.uint8), np.zeros(4, np.float32), None,
                           np.eye(3))

    def grade(self, inputs: list[GraderInput]) -> list[GradeAnswer]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.batches.append(len(inputs))
        if self.fails:
            raise FloatingPointError("non-finite probabilities")
        probabilities = [0.0] * 10
        probabilities[self.grade_given - 1] = 1.0
        worn_corner = GradedDefect("corner_wear", "corners", 0.42, (1.0, 2.0, 17.0, 18.0))
        return [GradeAnswer(self.grade_given, probabilities, [self.grade_given],
                            {"corners": 6}, embedding=[0.5, float(self.version)],
                            defects=[worn_corner], capped_by="corners")
                for _ in inputs]


@dataclass
class StandInSource:
    """A registry with fixed aliases."""

    current: ServedModels
    grader_name: str = "card-grader"
    detector_name: str = "defect-detector"
    problems: dict[str, str] = field(default_factory=dict)

    def refresh(self) -> ServedModels:
        return self.current


def _photo(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def _service(tmp_path: Path, models: ServedModels, **config: object) -> GradingService:
    return GradingService(StandInSource(models), PredictionLog(f"sqlite:///{tmp_path}/p.db"),
                          ServiceMetrics(), ServiceConfig(refresh_seconds=60, **config))


def _api(service: GradingService, tmp_path: Path) -> tuple[TestClient, dict[str, dict]]:
    """A test client of the service's API and the headers of a key per role."""
    store = KeyStore(tmp_path / "keys.json")
    headers = {role.value: {"Authorization": f"Bearer {store.create(f'the {role}', role)[1]}"}
               for role in Role}
    return TestClient(create_app(service, store)), headers


async def _grade_all(service: GradingService, request_ids: list[str]) -> list[dict]:
    await service.start()
    try:
        return [await service.grade(_photo(), request_id=request_id) for request_id in request_ids]
    finally:
        await service.stop()


def test_a_canary_answers_its_share_by_request_id_and_the_other_model_scores_off_path(
        tmp_path: Path) -> None:
    models = ServedModels(StandInGrader(1, 7), StandInGrader(2, 8), canary_share=0.5)
    service = _service(tmp_path, models)
    ids = [f"request-{i}" for i in range(40)]

    answers = asyncio.run(_grade_all(service, ids))

    for request_id, answer in zip(ids, answers, strict=True):
        on_canary = answers_with_challenger(request_id, 0.5)
        assert (answer["version"], answer["role"]) == ((2, "challenger") if on_canary
                                                       else (1, "champion"))
        assert answer["grade"] == (8 if on_canary else 7) and answer["request_id"] == request_id
    rows = service.log.window()
    assert len(rows) == 80  # every request scored by both models, once each
    answered = rows[rows["answered"]]
    assert sorted(answered["request_id"]) == sorted(ids)
    assert set(rows["data_version"]) == {"d1"} and rows["brightness"].notna().all()


def test_each_served_photo_leaves_a_thumbnail_and_its_embedding_for_monitoring(
        tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(3)), thumbnails=tmp_path / "served")

    asyncio.run(_grade_all(service, ["r/1", "r 2"]))

    thumbnails = sorted((tmp_path / "served").iterdir())
    assert thumbnails == sorted([thumbnail_path(tmp_path / "served", "r/1"),
                                 thumbnail_path(tmp_path / "served", "r 2")])
    assert cv2.imread(str(thumbnails[0])).shape == (48, 64, 3)  # smaller than 160: kept as is
    assert list(service.log.window()["embedding"]) == [[0.5, 3.0]] * 2


def test_a_challenger_in_shadow_never_answers_a_client(tmp_path: Path) -> None:
    models = ServedModels(StandInGrader(1, 7), StandInGrader(2, 7), canary_share=0.0)
    service = _service(tmp_path, models)

    answers = asyncio.run(_grade_all(service, [f"r{i}" for i in range(10)]))

    assert {a["version"] for a in answers} == {1}
    rows = service.log.window()
    assert set(rows[~rows["answered"]]["version"]) == {2}
    metrics = service.metrics.exposition()[0].decode()
    assert 'gradeline_shadow_agreement{challenger_version="2",champion_version="1"' in metrics


def test_the_champion_answers_when_the_challenger_fails(tmp_path: Path) -> None:
    models = ServedModels(StandInGrader(1, 7), StandInGrader(2, fails=True), canary_share=1.0)
    service = _service(tmp_path, models)

    answers = asyncio.run(_grade_all(service, ["a", "b", "c"]))

    assert {(a["version"], a["role"]) for a in answers} == {(1, "champion")}
    failed = service.log.window(roles=["challenger"])
    assert len(failed) == 3 and failed["error"].str.contains("non-finite").all()
    assert not failed["answered"].any()


def test_no_champion_means_not_ready(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels())
    with pytest.raises(NotReady, match="no champion"):
        asyncio.run(_grade_all(service, ["x"]))


def test_the_api_answers_grades_and_refuses_bad_uploads_with_clear_4xx(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)), max_files_per_request=3)
    api, keys = _api(service, tmp_path)
    with api as client:
        one = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                          headers={"X-Request-ID": "abc", **keys["client"]})
        served_id = one.json()["request_id"]
        batch = client.post("/v1/grade/batch", headers=keys["client"], files=[
            ("files", ("a.jpg", _photo())), ("files", ("notes.txt", b"not a photo at all"))])
        text = client.post("/v1/grade", files={"file": ("notes.txt", b"hello")},
                           headers=keys["client"])
        too_many = client.post("/v1/grade/batch", headers=keys["client"],
                               files=[("files", (f"{i}.jpg", _photo())) for i in range(4)])
        tiny = client.post("/v1/grade", files={"file": ("tiny.jpg", _photo(8, 8))},
                           headers=keys["client"])
        feedback = client.post("/v1/feedback", json={"request_id": served_id, "grade": 8},
                               headers=keys["expert"])
        unknown = client.post("/v1/feedback", json={"request_id": "nope", "grade": 8},
                              headers=keys["expert"])
        out_of_range = client.post("/v1/feedback", json={"request_id": served_id, "grade": 0},
                                   headers=keys["expert"])
        ready, health = client.get("/readyz"), client.get("/healthz")
        metrics = client.get("/metrics", headers=keys["operator"]).text

    assert one.status_code == 200 and one.headers["X-Request-ID"] == served_id
    body = one.json()
    assert body["correlation_id"] == "abc" and served_id != "abc"
    assert body["grade"] == 9 and body["grade_set"] == [9]
    assert body["needs_review"] is False and body["subgrades"] == {"corners": 6}
    assert body["probabilities"]["9"] == 1.0 and body["defects"] is None
    assert body["capped_by"] == "corners" and body["graded_defects"] == [
        {"class": "corner_wear", "aspect": "corners", "severity": 0.42,
         "box": [1.0, 2.0, 17.0, 18.0]}]
    assert [r.get("status", 200) for r in batch.json()["results"]] == [200, 415]
    assert batch.json()["results"][1]["request_id"].endswith("-1")
    assert text.status_code == 415 and "JPEG" in text.json()["error"]
    assert too_many.status_code == 413 and "more than 3 files" in too_many.json()["error"]
    assert tiny.status_code == 422
    assert feedback.status_code == 202 and unknown.status_code == 404
    assert out_of_range.status_code == 422
    assert service.log.expert_grades().to_dict("records") == [{"request_id": served_id,
                                                               "grade": 8}]
    assert ready.status_code == 200 and ready.json()["loaded"]["champion"]["version"] == 1
    assert health.json() == {"status": "ok"}
    assert 'gradeline_requests_total{model="card-grader",role="champion",status="200"' \
           in metrics.replace(',version="1"', "")
    assert "gradeline_rejected_uploads_total" in metrics


def test_the_camera_a_client_names_and_the_defects_found_are_logged(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)))
    api, keys = _api(service, tmp_path)
    phone = {"X-Camera": "phone-2", **keys["client"]}
    with api as client:
        one = client.post("/v1/grade", files={"file": ("card.jpg", _photo())}, headers=phone)
        batch = client.post("/v1/grade/batch", files=[("files", ("a.jpg", _photo()))],
                            headers=phone)
        unnamed = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                              headers=keys["client"])
        spaced = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                             headers={"X-Camera": "my phone", **keys["client"]})

    assert (one.status_code, batch.status_code, unnamed.status_code) == (200, 200, 200)
    assert spaced.status_code == 422 and "X-Camera must be" in spaced.json()["error"]
    rows = service.log.window().set_index("request_id")
    assert rows["camera"].to_dict() == {one.json()["request_id"]: "phone-2",
                                        batch.json()["results"][0]["request_id"]: "phone-2",
                                        unnamed.json()["request_id"]: None}
    assert rows["defects"].tolist() == [["corner_wear"]] * 3


def test_a_full_queue_gets_503_with_retry_after_not_an_unbounded_wait(tmp_path: Path) -> None:
    gate = threading.Event()
    service = _service(tmp_path, ServedModels(StandInGrader(1, gate=gate)), max_batch=1,
                       max_queue=1)

    async def flood() -> list[object]:
        await service.start()
        try:
            return await asyncio.gather(*(service.grade(_photo(), f"r{i}") for i in range(6)),
                                        return_exceptions=True)
        finally:
            gate.set()
            await service.stop()

    def release_later() -> None:
        threading.Timer(1.0, gate.set).start()

    release_later()
    outcomes = asyncio.run(flood())
    overloaded = [o for o in outcomes if type(o).__name__ == "Overloaded"]
    assert overloaded and all(o.retry_after_s >= 1 for o in overloaded)
    assert any(isinstance(o, dict) for o in outcomes)


def test_without_a_champion_the_api_is_not_ready(tmp_path: Path) -> None:
    api, keys = _api(_service(tmp_path, ServedModels()), tmp_path)
    with api as client:
        ready = client.get("/readyz")
        grade = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                            headers=keys["client"])
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert grade.status_code == 503 and grade.headers["Retry-After"] == "60"


def test_a_request_in_flight_when_the_champion_moves_still_gets_its_answer(
        tmp_path: Path) -> None:
    gate = threading.Event()
    service = _service(tmp_path, ServedModels(StandInGrader(1, 7, prepare_gate=gate)))

    async def promote_midway() -> tuple[dict, dict]:
        await service.start()
        try:
            in_flight = asyncio.create_task(service.grade(_photo(), "before"))
            await asyncio.sleep(0.2)  # the request is preparing its photo for version 1
            service.source.current = ServedModels(StandInGrader(2, 8))
            await service.refresh()
            gate.set()
            return await in_flight, await service.grade(_photo(), "after")
        finally:
            await service.stop()

    before, after = asyncio.run(promote_midway())
    assert (before["version"], before["grade"]) == (1, 7)
    assert (after["version"], after["grade"]) == (2, 8)


class _LockedLog(PredictionLog):
    """A prediction log whose writes fail while `locked` is set, as a locked database's do."""

    locked = True

    def write(self, records: list) -> None:
        if self.locked and records:
            raise OSError("database is locked")
        super().write(records)


def test_a_failed_prediction_log_write_is_counted_kept_and_written_later(
        tmp_path: Path) -> None:
    log = _LockedLog(f"sqlite:///{tmp_path}/p.db")
    service = GradingService(StandInSource(ServedModels(StandInGrader(1, 7))), log,
                             ServiceMetrics(), ServiceConfig(refresh_seconds=60))

    async def serve() -> tuple[dict, dict]:
        await service.start()
        try:
            await service.grade(_photo())
            await service.grade(_photo())
            await asyncio.gather(*list(service._background))
            degraded = service.readiness()[1]["prediction_log"]
            log.locked = False
            await service.grade(_photo())
            await asyncio.gather(*list(service._background))
            return degraded, service.readiness()[1]["prediction_log"]
        finally:
            await service.stop()

    degraded, healthy = asyncio.run(serve())
    metrics = service.metrics.exposition()[0].decode()

    assert degraded["healthy"] is False and degraded["pending"] == 2
    assert degraded["failed_writes"] == 2 and "database is locked" in degraded["last_error"]
    assert healthy["healthy"] is True and healthy["dropped"] == 0
    assert log.count() == 3  # nothing lost: the two kept records went in with the third
    assert "gradeline_prediction_log_failures_total 2.0" in metrics
    assert "gradeline_prediction_log_pending 0.0" in metrics


def test_a_request_past_its_time_limit_gets_503_not_an_endless_wait(tmp_path: Path) -> None:
    gate = threading.Event()
    service = _service(tmp_path, ServedModels(StandInGrader(1, gate=gate)),
                       request_timeout_s=0.3)
    try:
        with pytest.raises(NotReady, match="longer than 0.3 s") as late:
            asyncio.run(_grade_all(service, ["slow"]))
    finally:
        gate.set()
    assert late.value.retry_after_s >= 1
