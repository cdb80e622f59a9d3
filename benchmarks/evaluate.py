"""Evaluation at real sizes: the newest fast-profile grader of the train bench (trained first
when the bench home has none) goes through the `evaluate` flow with the project's params.yaml,
as `gradeline evaluate --model card-grader` would.

Targets (evaluate issue): ONNX Runtime at least 2x PyTorch eager per image at batch 1, int8
faster still; parity within 1e-3; the figures a reviewer reads (kappa against the human bar,
ECE before and after scaling, conformal coverage and set size) printed beside them.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.train import bench_train

ONNX_SPEEDUP_TARGET = 2.0


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
    eager = next(r for r in summary["latency"] if r["backend"] == "pytorch eager")
    headline = {"cards": cards, "kappa": round(summary["kappa"], 3),
                "human_bar": round(summary["human_bar"], 3), "verdict": summary["verdict"],
                "ece": f"{summary['ece_before']:.3f}->{summary['ece_after']:.3f}",
                "coverage": round(summary["coverage"], 3),
                "set_size": round(summary["mean_set_size"], 2),
                "parity": f"{summary['parity'][0]['max_abs_diff']:.1e}",
                "int8_kappa_drop": round(summary["int8"]["kappa_drop"], 3)}
    return [{**headline, "backend": row["backend"], "p50_ms": row["p50_ms"],
             "p99_ms": row["p99_ms"], "images_per_s": row["images_per_s"],
             "speedup_p50": round(eager["p50_ms"] / row["p50_ms"], 2),
             "met": row["backend"] == "pytorch eager"
             or eager["p50_ms"] / row["p50_ms"] >= ONNX_SPEEDUP_TARGET}
            for row in summary["latency"]]
