"""Reviewers' corrected boxes through the service's API, stored beside the prediction log, and
the served detector's boxes logged with each answer, so monitoring can measure the detector's
recall per class (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from components.box_reviews import BoxReviewError, BoxReviews
from components.evaluate.graphs import sha256
from components.monitor.boxes import box_agreement
from components.predlog import PredictionLog
from components.serving.source import ServedModels
from components.vision.models import OnnxDetector
from tests.graphs import detector_graph
from tests.unit.test_serving_service import StandInGrader, _api, _photo, _service

# A confident "dent" centred in the 64-pixel letterbox, 16 x 16: on a 64 x 48 photo that is
# x 24..40, y 16..32 (8 rows of padding above).
DENT = np.array([[32], [32], [16], [16], [0.0], [0.85]], np.float32)


def test_a_reviewers_boxes_are_recorded_against_the_boxes_the_detector_served(
        tmp_path: Path) -> None:
    graph = detector_graph(tmp_path / "detector.onnx", DENT)
    detector = OnnxDetector.load(graph, sha256(graph), "defect-detector", 2)
    service = _service(tmp_path, ServedModels(StandInGrader(1, 8), detector=detector))
    api, keys = _api(service, tmp_path)
    with api as client:
        served = client.post("/v1/grade", files={"file": ("part.jpg", _photo())},
                             headers=keys["client"]).json()
        request_id = served["request_id"]
        review = {"request_id": request_id,
                  "boxes": [{"class": "dent", "box": [25, 17, 41, 33]},
                            {"class": "scratch", "box": [2, 2, 10, 30]}]}
        by_client = client.post("/v1/feedback/boxes", json=review, headers=keys["client"])
        recorded = client.post("/v1/feedback/boxes", json=review, headers=keys["expert"])
        unknown = client.post("/v1/feedback/boxes", json={**review, "request_id": "nope"},
                              headers=keys["expert"])
        empty_box = client.post("/v1/feedback/boxes", json={
            "request_id": request_id, "boxes": [{"class": "dent", "box": [9, 9, 9, 20]}]},
            headers=keys["expert"])

    assert served["defects"][0]["label"] == "dent"
    assert (by_client.status_code, recorded.status_code, unknown.status_code,
            empty_box.status_code) == (403, 202, 404, 422)
    assert "is empty" in str(empty_box.json())
    row = service.log.window().iloc[0]
    assert row["boxes"] == [{"class": "dent", "box": [24.0, 16.0, 40.0, 32.0],
                             "confidence": 0.85}]
    reviews = BoxReviews(service.log).frame()
    assert list(reviews["request_id"]) == [request_id]  # the refused ones left nothing
    assert reviews.iloc[0]["reviewer"] == "the expert"
    table = box_agreement(service.log.window(), reviews).set_index("class")
    assert table.loc["dent", "recall"] == 1.0 and table.loc["scratch", "recall"] == 0.0


def test_a_review_needs_a_logged_request_and_well_formed_boxes(tmp_path: Path) -> None:
    reviews = BoxReviews(PredictionLog(f"sqlite:///{tmp_path}/p.db"))
    now = datetime.now(UTC)

    with pytest.raises(KeyError, match="no answered prediction"):
        reviews.record("req-1", [], "ada", now)
    with pytest.raises(BoxReviewError, match="box 0: needs a class and four numbers"):
        reviews.record("req-1", [{"class": "dent", "box": [1, 2, 3]}], "ada", now)
    assert reviews.frame().empty
