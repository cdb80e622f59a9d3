"""The review queue through the service's API: an expert leases the next served photo without
the model's answer, sees its photo (nobody else can), and their grade ends the lease, so the
item goes to the next expert of its panel."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from components.reviews import ReviewParams
from components.serving.app import create_app
from components.serving.keys import KeyStore, Role
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


def test_experts_work_the_queue_one_item_at_a_time_without_seeing_the_answer(
        tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)),
                       thumbnails=tmp_path / "thumbnails")
    store = KeyStore(tmp_path / "keys.json")
    client_key = _bearer(store, "a shop", Role.CLIENT)
    ada, grace = _bearer(store, "ada", Role.EXPERT), _bearer(store, "grace", Role.EXPERT)
    with TestClient(create_app(service, store, ReviewParams(audit_share=1.0, panel=2))) as api:
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
                           "graded_by": 0, "wanted": 2, "lease_seconds": 600.0,
                           "photo": f"/v1/review/{graded['request_id']}/photo"}
    assert "grade" not in item.json()  # no anchoring on the model's answer
    assert held_elsewhere.status_code == 204  # ada holds the only item
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert not_yours.status_code == 403
    assert for_grace.json()["graded_by"] == 1
    assert done.status_code == 204  # the panel of two has graded it
    assert refused.status_code == 403
