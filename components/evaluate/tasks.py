"""Evaluation's task plugins: how a model of each task type is judged, exported and gated. Both
take the model folder, the dataset, an output folder, the evaluate params, a progress callback
and the lineage to write into the exported graph, and return an evaluation with the same
`summary()`, `metrics()`, `plots` and `graphs()`.

    evaluate = plugin_for(EVALUATIONS, "detect", "evaluation")
    evaluation = evaluate(model_dir, root, out_dir, params, on_progress, metadata=lineage)
"""

from __future__ import annotations

from collections.abc import Callable

from components.evaluate.detector_model import DetectorModelEvaluation, evaluate_detector_model
from components.evaluate.grader import GraderEvaluation, evaluate_grader

Evaluation = GraderEvaluation | DetectorModelEvaluation

EVALUATIONS: dict[str, Callable[..., Evaluation]] = {
    "grade": evaluate_grader,
    "detect": evaluate_detector_model,
}
