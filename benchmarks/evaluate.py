"""Evaluation at real sizes: the newest fast-profile grader of the train bench (trained first
when the bench home has none) goes through the `evaluate` flow with the project's params.yaml,
as `gradeline evaluate --model card-grader` would.

Targets (evaluate issue): ONNX Runtime at least 2x PyTorch eager per image at batch 1, int8
faster still; parity within 1e-3; the figures a reviewer reads (kappa against the human bar,
ECE before and after scaling, conformal coverage and set size) printed beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from benchmarks.train import bench_train

ONNX_SPEEDUP_TARGET = 2.0
# Issue 15: defects of severity 0.25 or worse found at least this often, per class.
SEGMENTATION_RECALL_TARGET = 0.9
EVALUATION = "evaluation.json"


def bench_evaluate(workdir: Path, cards: int) -> list[dict[str, object]]:
    """One row per backend of the latency table, each with the evaluation's headline figures."""
    from components.settings import load_settings

    settings = load_settings(home=workdir / "train-home").activate()
    from flows.evaluate import run_evaluate  # Prefect reads PREFECT_HOME at import
    from model_registry import VersionNotFound, get_version

    try:
        get_version(str(settings.mlflow_tracking_uri), "card-grader")
    except VersionNotFound:
        bench_train(workdir, cards, [("grade", "fast")])
    summary = run_evaluate(settings, "card-grader")
    (workdir / EVALUATION).write_text(json.dumps(summary))  # the segmentation bench reads it
    eager = next(r for r in summary["latency"] if r["backend"] == "pytorch eager")
    headline = {"cards": cards, "kappa": round(summary["kappa"], 3),
                "human_bar": round(summary["human_bar"], 3), "verdict": summary["verdict"],
                "ece": f"{summary['ece_before']:.3f}->{summary['ece_after']:.3f}",
                "coverage": round(summary["coverage"], 3),
                "set_size": round(summary["mean_set_size"], 2),
                **{f"qwk_{name}": round(figures["qwk"], 3) for name, figures in
                   summary["agreement"]["per_subgrade"].items()},
                "gates_failed": ",".join(g["name"] for g in summary["gates"] if not g["passed"])
                or "none",
                "parity": f"{summary['parity'][0]['max_abs_diff']:.1e}",
                "int8_kappa_drop": round(summary["int8"]["kappa_drop"], 3)}
    return [{**headline, "backend": row["backend"], "p50_ms": row["p50_ms"],
             "p99_ms": row["p99_ms"], "images_per_s": row["images_per_s"],
             "speedup_p50": round(eager["p50_ms"] / row["p50_ms"], 2),
             "met": row["backend"] == "pytorch eager"
             or eager["p50_ms"] / row["p50_ms"] >= ONNX_SPEEDUP_TARGET}
            for row in summary["latency"]]


def bench_segmentation(workdir: Path) -> list[dict[str, object]]:
    """The evaluate bench's grader as a defect segmenter, per class, on the test split."""
    path = workdir / EVALUATION
    if not path.is_file():
        raise RuntimeError("no evaluation in the bench home: run the evaluate bench first")
    rows = json.loads(path.read_text())["segmentation"]
    return [{**row, "met": row["recall"] is not None
             and row["recall"] >= SEGMENTATION_RECALL_TARGET} for row in rows]


def bench_cameras(workdir: Path, cards: int) -> list[dict[str, object]]:
    """The evaluated grader (the evaluate bench's) on new cards from every camera, served as
    the service serves it: QWK against the experts' consensus and per subgrade, per camera."""
    from components.cards import CAMERAS, synthesize_batch
    from components.settings import load_settings
    from components.vision.agreement import grading_metrics
    from components.vision.graph import read_metadata
    from components.vision.models import OnnxGrader

    settings = load_settings(home=workdir / "train-home").activate()
    graphs = sorted((settings.cache_dir / "evaluate").glob("card-grader-*/out/model.onnx"))
    if not graphs:
        raise RuntimeError("no evaluated grader in the bench home: run the evaluate bench first")
    grader = OnnxGrader(graphs[-1], "card-grader", int(read_metadata(graphs[-1])["version"]))
    rows = []
    for camera in CAMERAS:
        batch = workdir / f"cameras-{camera}"
        synthesize_batch(batch, n=cards, seed=91, camera=camera)
        manifest = pd.read_csv(batch / "manifest.csv")
        answers = []
        for start in range(0, len(manifest), 32):
            photos = [cv2.imread(str(batch / p)) for p in manifest["image_path"][start:start + 32]]
            answers += grader.grade([grader.prepare(photo) for photo in photos])
        predicted = {"grade": [a.grade for a in answers],
                     **{name: [a.subgrades[name] for a in answers]
                        for name in ("centering", "corners", "edges", "surface")}}
        rows.append({"camera": camera, "cards": len(manifest),
                     **{("qwk" if name == "grade" else f"qwk_{name}"): round(grading_metrics(
                         manifest[name].to_numpy(), np.array(values), range(1, 11))["qwk"], 3)
                        for name, values in predicted.items()}})
    return rows
