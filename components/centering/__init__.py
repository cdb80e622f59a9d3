"""Classical (OpenCV) centering measurement: how a grader explains a centering subgrade."""

from components.centering.measure import (
    CenteringError,
    CenteringMeasurement,
    draw_centering,
    measure_centering,
)

__all__ = ["CenteringError", "CenteringMeasurement", "draw_centering", "measure_centering"]
