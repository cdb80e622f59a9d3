"""The JSON body a client reads for one graded photo: what the grade is, from which model, how
sure, what caps it, which defects it was read from, and the measured centering."""

from __future__ import annotations

from components.vision.centering import CenteringMeasurement
from components.vision.models import (
    Defect,
    GradeAnswer,
    OnnxDetector,
    OnnxGrader,
    answer_fields,
)


def grade_response(request_id: str, correlation_id: str | None, role: str, model: OnnxGrader,
                   answer: GradeAnswer, centering: CenteringMeasurement | None,
                   defects: list[Defect] | None,
                   detector: OnnxDetector | None) -> dict[str, object]:
    """The answer of `model` (acting as `role`) for one photo, with the detector's `defects`
    when a detector is served (None otherwise)."""
    return {
        "request_id": request_id, "correlation_id": correlation_id,
        "model": model.model, "version": model.version, "role": role,
        "data_version": model.data_version,
        **answer_fields(answer, centering),
        "defects": None if defects is None else [d.as_dict() for d in defects],
        "detector": None if detector is None else {"model": detector.model,
                                                   "version": detector.version},
    }
