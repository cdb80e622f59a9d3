"""The synthetic card factory: cards with known ground truth, an expert panel, camera drift.

Start with `synthesize_batch` (factory.py); the rubric (rubric.py), the panel (panel.py) and the
camera profiles (camera.py) document what the labels mean.
"""

from components.cards.camera import CAMERAS
from components.cards.factory import (
    BatchSummary,
    FactoryError,
    detection_batch,
    synthesize_batch,
)
from components.cards.sheet import contact_sheet

__all__ = ["CAMERAS", "BatchSummary", "FactoryError", "contact_sheet", "detection_batch",
           "synthesize_batch"]
