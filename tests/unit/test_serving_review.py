"""The review queue through the service's API: an expert leases the next served photo without
the model's answer, sees its photo (nobody else can), and their grade ends the lease, so the
item goes to the next expert of its panel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from components.reviews import ReviewParams, ReviewQueue
from components.serving.app import create_app
from components.serving.keys import KeyStore, Role
from components.serving.service import GradingService
from components.serving.source import ServedModels
from tests.unit.test_serving_service import StandInGrader, _photo, _service


def _bearer(store: KeyStore, name: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {store.create(name, role)[1]}"}


def _next(client: TestClient, headers: dict[str, str], timeout: float = 10) -> object:
    """GET /v1/review/next until the answer's log row is written (the service writes it in
    the background) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/v1/review/next", headers=headers)
        if response.status_code != 204 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@contextmanager
def _review_api(tmp_path: Path, panel: int, experts: tuple[str, ...]
                ) -> Iterator[tuple[TestClient, GradingService, dict[str, dict[str, str]]]]:
    """The API of a service whose stand-in champion grades 9 and whose every answer is
    audited; the headers of a shop's key ("shop") and of each expert's, by name."""
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)),
                       thumbnails=tmp_path / "thumbnails")
    store = KeyStore(tmp_path / "keys.json")
    keys = {"shop": _bearer(store, "a shop", Role.CLIENT),
            **{name: _bearer(store, name, Role.EXPERT) for name in experts}}
    with TestClient(create_app(service, store, ReviewParams(audit_share=1.0, panel=panel))) as api:
        yield api, service, keys


def test_experts_work_the_queue_one_item_at_a_time_without_seeing_the_answer(
        tmp_path: Path) -> None:
    with _review_api(tmp_path, 2, ("ada", "grace")) as (api, _, keys):
        client_key, ada, grace = keys["shop"], keys["ada"], keys["grace"]
        graded = api.post("/v1/grade", headers=client_key,
                          files={"file": ("card.jpg", _photo())}).json()

        item = _next(api, ada)
        held_elsewhere = api.get("/v1/review/next", headers=grace)
        photo = api.get(item.json()["photo"], headers=ada)
        not_yours = api.get(item.json()["photo"], headers=grace)
        api.post("/v1/feedback", headers=ada,
                 json={"request_id": graded["request_id"], "grade": 8})
        for_grace = api.get("/v1/review/next", headers=grace)
        api.post("/v1/feedback", headers=grace,
                 json={"request_id": graded["request_id"], "grade": 8})
        done = api.get("/v1/review/next", headers=ada)
        refused = api.get("/v1/review/next", headers=client_key)

    assert item.status_code == 200
    assert item.json() == {"request_id": graded["request_id"], "reasons": ["audit"],
                           "graded_by": 0, "wanted": 2, "waiting": 1, "aspects": ["corners"],
                           "lease_seconds": 600.0,
                           "photo": f"/v1/review/{graded['request_id']}/photo",
                           # what the model measured, drawn for the expert, in the copy's pixels
                           "overlay": {"outer": None, "inner": None, "defects": [
                               {"class": "corner_wear", "box": [1.0, 2.0, 17.0, 18.0]}]}}
    assert "grade" not in item.json()  # no anchoring on the model's answer
    assert held_elsewhere.status_code == 204  # ada holds the only item
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(photo.content, np.uint8), cv2.IMREAD_COLOR).shape == \
        cv2.imdecode(np.frombuffer(_photo(), np.uint8), cv2.IMREAD_COLOR).shape  # full size
    assert not_yours.status_code == 403
    assert for_grace.json()["graded_by"] == 1
    assert done.status_code == 204  # the panel of two has graded it
    assert refused.status_code == 403


def test_the_models_answer_shows_after_the_experts_grade_and_subgrades_are_kept(
        tmp_path: Path) -> None:
    with _review_api(tmp_path, 3, ("ada", "grace", "alan")) as (api, service, experts):
        client_key = experts["shop"]
        request_ids = [api.post("/v1/grade", headers=client_key, files={
            "file": ("card.jpg", _photo())}).json()["request_id"] for _ in range(2)]
        item = _next(api, experts["ada"]).json()
        before = api.get(f"/v1/review/{item['request_id']}/answer", headers=experts["ada"])
        sent = api.post("/v1/feedback", headers=experts["ada"], json={
            "request_id": item["request_id"], "grade": 7, "subgrades": {"corners": 5}})
        after = api.get(f"/v1/review/{item['request_id']}/answer", headers=experts["ada"])
        not_graded_by_grace = api.get(f"/v1/review/{item['request_id']}/answer",
                                      headers=experts["grace"])
        bad_subgrade = api.post("/v1/feedback", headers=experts["ada"], json={
            "request_id": item["request_id"], "grade": 7, "subgrades": {"corners": 11}})
        # Grace and Alan grade both photos 8: Ada's 7 is one below their median.
        for request_id in request_ids:
            for name, grade in (("grace", 8), ("alan", 8)):
                api.post("/v1/feedback", headers=experts[name],
                         json={"request_id": request_id, "grade": grade})
        me = api.get("/v1/review/me", headers=experts["ada"]).json()
        page = api.get("/review")

    assert before.status_code == 403 and "first" in before.json()["error"]
    assert sent.status_code == 202
    assert after.json() == {"request_id": item["request_id"], "your_grade": 7, "answers": [
        {"model": "card-grader", "version": 1, "role": "champion", "answered": True,
         "grade": 9, "grade_set": [9, 9], "subgrades": {"corners": 6}}]}
    assert not_graded_by_grace.status_code == 403
    assert bad_subgrade.status_code == 422
    panel = service.log.expert_panel()
    assert panel[panel["grader"] == "ada"]["subgrades"].tolist() == [{"corners": 5}]
    assert me == {"expert": "ada", "graded": 1, "compared": 1, "exact": 0.0,
                  "within_one": 1.0, "bias": -1.0,
                  "gold": {"compared": 0, "exact": None, "within_one": None, "bias": None}}
    assert page.status_code == 200 and "Expert key" in page.text


def test_a_gold_item_looks_audited_to_the_expert_and_measures_them(tmp_path: Path) -> None:
    with _review_api(tmp_path, 3, ("ada",)) as (api, service, keys):
        first, second = (api.post("/v1/grade", headers=keys["shop"], files={
            "file": ("card.jpg", _photo())}).json()["request_id"] for _ in range(2))
        deadline = time.monotonic() + 10
        while not service.log.answers_to(second) and time.monotonic() < deadline:
            time.sleep(0.1)  # the service logs its answers in the background
        ReviewQueue(service.log, ReviewParams()).add_gold(second, 8, "head grader",
                                                          datetime.now(UTC))
        item = api.get("/v1/review/next", headers=keys["ada"]).json()
        api.post("/v1/feedback", headers=keys["ada"], json={"request_id": second, "grade": 7})
        then = api.get("/v1/review/next", headers=keys["ada"]).json()
        me = api.get("/v1/review/me", headers=keys["ada"]).json()

    # Gold comes first (ada has graded nothing yet), shown as an audit; then the queue's oldest.
    assert (item["request_id"], item["reasons"]) == (second, ["audit"])
    assert then["request_id"] == first
    assert me["gold"] == {"compared": 1, "exact": 0.0, "within_one": 1.0, "bias": -1.0}
