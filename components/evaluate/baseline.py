"""The simpler model a grader must beat: a linear model of the grade on what needs no learning
from pixels (each card's lighting, colour, sharpness and noise, and its centering geometry),
fitted on the calibration split and scored on the test split like the grader.

    qwk = baseline_qwk(calibration.pixels, calibration.geometry, calibration_grades,
                       test.pixels, test.geometry, test_grades)

If a ridge regression on nine numbers per card grades as well as the network, the network's
cost buys nothing (the ML Test Score's "a simpler model is not better").
"""

from __future__ import annotations

import cv2
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from components.vision.agreement import grading_metrics
from components.vision.properties import image_properties

# Of the served photo's properties, those a rectified card of fixed size still varies in.
_FEATURES = ("brightness", "contrast", "saturation", "colour_temperature", "sharpness", "noise")


def card_features(pixels: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """N x (6 + geometry columns): image properties of each rectified RGB card, then its
    centering geometry."""
    properties = [image_properties(cv2.cvtColor(card, cv2.COLOR_RGB2BGR)) for card in pixels]
    return np.column_stack([np.array([[p[name] for name in _FEATURES] for p in properties]),
                            geometry.astype(float)])


def baseline_qwk(fit_pixels: np.ndarray, fit_geometry: np.ndarray, fit_grades: np.ndarray,
                 test_pixels: np.ndarray, test_geometry: np.ndarray,
                 test_grades: np.ndarray) -> float:
    """QWK on the test cards of a ridge regression fitted on the `fit` cards, its predictions
    rounded to grades 1..10."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    model.fit(card_features(fit_pixels, fit_geometry), fit_grades.astype(float))
    predicted = np.clip(np.rint(model.predict(card_features(test_pixels, test_geometry))), 1, 10)
    return grading_metrics(test_grades.astype(int), predicted.astype(int))["qwk"]
