"""The grading service under the attacks a client on its port could try: no key, a revoked key,
forged expert grades, a chosen request id, a 1000-file batch (an oversized upload streamed
without a length: tests/integration/test_serving_http.py). Stand-in models, the real app."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from components.serving.keys import AccessDenied, KeyStore, Role
from components.serving.routing import answers_with_challenger
from components.serving.source import ServedModels
from tests.unit.test_serving_service import StandInGrader, _api, _photo, _service


def test_keys_are_stored_only_as_hashes_readable_by_their_owner(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, token = store.create("ada", Role.EXPERT)

    text = (tmp_path / "keys.json").read_text()
    assert token not in text and token.split("_", 2)[2] not in text  # the secret may hold "_"
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.authenticate(token) == key and key.name == "ada"
    assert KeyStore(tmp_path / "keys.json").authenticate(token).role is Role.EXPERT
    for wrong in (None, "", "gl_nope_x", token[:-1] + ("A" if token[-1] != "A" else "B")):
        with pytest.raises(AccessDenied) as denied:
            store.authenticate(wrong)
        assert denied.value.status == 401

    KeyStore(tmp_path / "keys.json").revoke(key.key_id)  # another process, e.g. the CLI
    with pytest.raises(AccessDenied, match="revoked"):
        store.authenticate(token)
    with pytest.raises(KeyError, match="no key"):
        store.revoke("missing")


def test_every_route_but_the_health_checks_needs_a_key_of_the_right_role(
        tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)))
    api, keys = _api(service, tmp_path)
    photo = {"file": ("card.jpg", _photo())}
    with api as client:
        anonymous = client.post("/v1/grade", files=photo)
        forged = client.post("/v1/grade", files=photo,
                             headers={"Authorization": "Bearer gl_0000_forged"})
        graded = {role: client.post("/v1/grade", files=photo, headers=keys[role]).status_code
                  for role in keys}
        client_feedback = client.post("/v1/feedback", headers=keys["client"],
                                      json={"request_id": "x", "grade": 5})
        metrics = {role: client.get("/metrics", headers=keys[role]).status_code
                   for role in keys}
        refresh = {role: client.post("/v1/admin/refresh", headers=keys[role]).status_code
                   for role in keys}
        health = client.get("/healthz").status_code, client.get("/readyz").status_code
        store = KeyStore(tmp_path / "keys.json")  # as `gradeline keys revoke` would
        store.revoke(next(key.key_id for key in store.active() if key.role is Role.CLIENT))
        after_revocation = client.post("/v1/grade", files=photo, headers=keys["client"])

    assert anonymous.status_code == forged.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "gradeline keys create" in anonymous.json()["error"]
    assert graded == {"client": 200, "expert": 200, "operator": 200}
    assert client_feedback.status_code == 403 and "needs expert" in client_feedback.json()["error"]
    assert metrics == refresh == {"client": 403, "expert": 403, "operator": 200}
    assert health == (200, 200)
    assert after_revocation.status_code == 401 and "revoked" in after_revocation.json()["error"]


def test_an_expert_grade_is_recorded_under_the_key_and_cannot_overwrite_another_expert(
        tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)))
    api, keys = _api(service, tmp_path)
    second_expert = {"Authorization": "Bearer " + KeyStore(tmp_path / "keys.json").create(
        "bea", Role.EXPERT)[1]}
    with api as client:
        served = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                             headers=keys["client"]).json()["request_id"]
        named = client.post("/v1/feedback", headers=keys["expert"],
                            json={"request_id": served, "grade": 3, "grader": "ada"})
        first = client.post("/v1/feedback", headers=keys["expert"],
                            json={"request_id": served, "grade": 8})
        corrected = client.post("/v1/feedback", headers=keys["expert"],
                                json={"request_id": served, "grade": 9})
        other = client.post("/v1/feedback", headers=second_expert,
                            json={"request_id": served, "grade": 9})
        flood = [client.post("/v1/feedback", headers=second_expert,
                             json={"request_id": served, "grade": 1}) for _ in range(30)]

    assert named.status_code == 422 and "grader" in named.text  # never taken from the body
    assert first.json()["grader"] == "the expert" and corrected.status_code == 202
    assert other.status_code == 202 and all(r.status_code == 202 for r in flood)
    # One grade per expert: bea's 30 posts replace her own grade, never ada's 9.
    assert service.log.expert_grades().to_dict("records") == [{"request_id": served,
                                                               "grade": 5}]


def test_a_client_cannot_choose_its_request_id_nor_which_model_answers(tmp_path: Path) -> None:
    models = ServedModels(StandInGrader(1, 7), StandInGrader(2, 8), canary_share=0.5)
    service = _service(tmp_path, models)
    api, keys = _api(service, tmp_path)
    chosen = next(f"pick-{i}" for i in range(100) if answers_with_challenger(f"pick-{i}", 0.5))
    with api as client:
        answers = [client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                               headers={"X-Request-ID": chosen, **keys["client"]}).json()
                   for _ in range(30)]
        spaced = client.post("/v1/grade", files={"file": ("card.jpg", _photo())},
                             headers={"X-Request-ID": "two words", **keys["client"]})

    assert {answer["correlation_id"] for answer in answers} == {chosen}
    assert len({answer["request_id"] for answer in answers}) == 30
    assert chosen not in {answer["request_id"] for answer in answers}
    assert {answer["version"] for answer in answers} == {1, 2}  # not all on the chosen side
    assert set(service.log.window()["correlation_id"]) == {chosen}
    assert spaced.status_code == 422 and "X-Request-ID" in spaced.json()["error"]


def test_a_batch_of_1000_files_is_refused_before_the_rest_is_read(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)))
    api, keys = _api(service, tmp_path)
    photo = _photo()
    with api as client:
        response = client.post("/v1/grade/batch", headers=keys["client"],
                               files=[("files", (f"{i}.jpg", photo)) for i in range(1000)])
    assert response.status_code == 413
    assert "more than 32 files" in response.json()["error"]
    assert service.log.count() == 0
