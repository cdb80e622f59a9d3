"""Classical (OpenCV) centering measurement: how a grader explains a centering subgrade."""

from components.centering.accuracy import CenteringAccuracy, centering_accuracy
from components.centering.measure import (
    CenteringError,
    CenteringMeasurement,
    draw_centering,
    measure_centering,
)

__all__ = [
    "CenteringAccuracy",
    "CenteringError",
    "CenteringMeasurement",
    "centering_accuracy",
    "draw_centering",
    "measure_centering",
]
