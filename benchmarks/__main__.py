"""`make bench`: card factory throughput, centering accuracy per camera, ingest speed, and
training quality and speed, and a warm-started retraining against a cold one
(benchmarks/train.py), users' own small datasets classified (benchmarks/classify.py),
evaluation figures with the latency table of PyTorch, ONNX and int8, the grader's severity maps
as a defect segmentation and the served grader on every camera (benchmarks/evaluate.py), one
photo's path through the service stage by stage and the grading service under load
(benchmarks/serve.py), side by side with `mlflow models serve` of the same model
(benchmarks/versus.py), at twice its capacity through a SIGTERM (benchmarks/overload.py) and as
two replicas behind nginx (benchmarks/replicas.py), as a table or JSON.

    python -m benchmarks [--only factory centering ingest train evaluate segment cameras
        retrain classify path serve versus overload replicas] [--cards 1000] [--centering-cards 300]
        [--ingest 2000 10000] [--train-cards 2000] [--train grade:fast [detect:fast]]
        [--camera-cards 300] [--retrain-cards 600] [--classify-per-class 60] [--requests 300]
        [--overload-seconds 300] [--json]

Targets: at least 100 cards/s on 2 cores and centering within 1 percentage point on clean
studio images (foundation); at least 500 card images/s validated end to end through the ingest
flow, Prefect overhead included (ingest); the training, evaluation and serving targets
are in benchmarks/train.py, benchmarks/evaluate.py and benchmarks/serve.py.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.classify import bench_classify
from benchmarks.evaluate import bench_cameras, bench_evaluate, bench_segmentation
from benchmarks.overload import bench_overload
from benchmarks.replicas import bench_replicas
from benchmarks.serve import bench_path, bench_serve
from benchmarks.train import bench_retrain, bench_train
from benchmarks.versus import bench_versus
from components.cards import CAMERAS, synthesize_batch
from components.evaluate.centering import centering_accuracy

SECTIONS = ("factory", "centering", "ingest", "train", "evaluate", "segment", "cameras",
            "retrain", "classify", "path", "serve", "versus", "overload", "replicas")
TITLES = {
    "factory": "card factory (target: >= 100 cards/s on this machine's cores)",
    "centering": "centering vs truth, percentage points (target: studio max_abs <= 1.0)",
    "ingest": "ingest flow (target: images_per_s >= 500 through the flow, Prefect included)",
    "train": "train flow, params.yaml budgets (targets: grade fast val QWK >= 0.90 in < 600 s; "
             "detect fast mAP50 >= 0.5)",
    "evaluate": "evaluate flow on the newest fast grader (targets: test QWK >= human bar - "
                "0.02, each subgrade >= 0.90, ECE <= 0.03, coverage 0.90 +- 0.02 with set size "
                "<= 1.5; ONNX p50 >= 2x faster than PyTorch eager at batch 1)",
    "segment": "the evaluated grader's severity maps as a defect segmentation, test split "
               "(target: recall >= 0.9 of defects of severity >= 0.25, per class)",
    "cameras": "the evaluated grader, served, on new cards of each camera (targets: QWK >= "
               "the human bar - 0.02, each subgrade >= 0.90)",
    "retrain": "a batch of phone cards arrives: the grader fine-tuned on it and as many older "
               "cards (warm start, what `retrain` does) against a new one trained on everything",
    "classify": "users' own small ImageFolders through ingest and `train --task classify` "
                "(target: the batch accepted, val accuracy >= 0.9)",
    "path": "one photo's path through the service, stage by stage on one thread (where a "
            "request's CPU goes, before anything is made faster)",
    "serve": "grading service over HTTP, full-size photos (targets: micro-batching raises "
             "answered/s over max_batch 1; overload answers 503 with Retry-After)",
    "versus": "`gradeline serve` and `mlflow models serve` of the same model, same photos and "
              "cores (targets: answered/s at 8 clients >= 3x mlflow's, aim 5x; p50 at 1 "
              "client <= 25 ms)",
    "overload": "the service at twice its capacity, then SIGTERM under that load (targets: no "
                "crash, bounded memory, every refusal 503 + Retry-After, no failed answer)",
    "replicas": "two serve replicas behind nginx (the cluster profile) against one process, "
                "same photos and cores, one PostgreSQL prediction log",
}


def bench_factory(workdir: Path, cards: int) -> list[dict[str, object]]:
    """Cards per second on one core and on every core, in forked processes and on Dask: workers
    of a running scheduler (as in production), and a local cluster started for the job."""
    from distributed import LocalCluster

    cores = os.cpu_count() or 1

    def run(backend: str, workers: int, scheduler: str | None = None) -> dict[str, object]:
        os.environ["GRADELINE_PARALLEL_BACKEND"] = backend
        os.environ.pop("GRADELINE_DASK_SCHEDULER", None)
        if scheduler:
            os.environ["GRADELINE_DASK_SCHEDULER"] = scheduler
        name = f"factory-{backend}-{'scheduler' if scheduler else 'own'}-{workers}"
        # A scheduler's workers set the parallelism; more chunks in flight than that is free.
        summary = synthesize_batch(workdir / name, n=cards, seed=1,
                                   workers=max(workers, 2) if scheduler else workers)
        return {"backend": backend, "dask_scheduler": "running" if scheduler else
                ("started for the job" if backend == "dask" else "-"), "workers": workers,
                "cards": cards, "seconds": summary.seconds, "cards_per_s": summary.cards_per_s}

    try:
        rows = [run("processes", workers) for workers in sorted({1, cores})]
        for workers in sorted({1, cores}):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                rows.append(run("dask", workers, cluster.scheduler_address))
        rows.append(run("dask", cores))
    finally:
        for name in ("GRADELINE_PARALLEL_BACKEND", "GRADELINE_DASK_SCHEDULER"):
            os.environ.pop(name, None)
    return rows


def bench_centering(workdir: Path, cards: int) -> list[dict[str, object]]:
    """Centering error against the factory's truth, per camera."""
    rows = []
    for camera in CAMERAS:
        batch = workdir / f"centering-{camera}"
        synthesize_batch(batch, n=cards, seed=11, camera=camera)
        rows.append({"camera": camera, **centering_accuracy(batch).as_dict()})
    return rows


def bench_ingest(workdir: Path, sizes: list[int]) -> list[dict[str, object]]:
    """The ingest flow on fresh factory batches, one new dataset each: validation throughput
    (flow start to the suite's verdict), the item checks alone, and what follows the verdict
    (Data Docs, quarantine, copy, dvc add and push)."""
    from components.ingest import TASKS, AcceptedIndex, IngestParams, check_batch, read_batch
    from components.settings import load_settings

    load_settings(home=workdir / "home").activate()
    from flows.ingest import ingest  # Prefect reads PREFECT_HOME at import: after activate()

    limits = IngestParams().image_limits
    rows = []
    for number, size in enumerate(sizes):
        batch = workdir / f"ingest-{size}"
        synthesize_batch(batch, n=size, seed=40 + number)
        started = time.perf_counter()
        check_batch(read_batch(batch, needs_boxes=False), TASKS["grade"], AcceptedIndex(), limits,
                    max_bits=20)
        checks_only = size / (time.perf_counter() - started)
        summary = ingest(str(batch), task="grade", dataset=f"bench-{size}")
        seconds, verdict = summary["seconds"], summary["validation_seconds"]
        rows.append({"images": size, "status": summary["status"],
                     "images_per_s": summary["images_per_s"],
                     "validation_s": summary["validation_seconds"],
                     "checks_only_per_s": round(checks_only, 1),
                     "after_verdict_s": round(seconds - verdict, 2),
                     "total_s": summary["seconds"]})
    return rows


def _table(rows: list[dict[str, object]]) -> str:
    """Rows as aligned columns: every key any row has, in order of first use ('-' if absent)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[str(row.get(c, "-")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run (default: all)")
    parser.add_argument("--cards", type=int, default=1000, help="cards for the factory bench")
    parser.add_argument("--centering-cards", type=int, default=300, help="cards per camera")
    parser.add_argument("--ingest", type=int, nargs="*", default=[2000, 10000],
                        help="batch sizes for the ingest bench")
    parser.add_argument("--train-cards", type=int, default=2000, help="cards to train on")
    parser.add_argument("--train", nargs="+", default=["grade:fast"],
                        help="task:profile pairs to train; detect:fast takes hours on a CPU")
    parser.add_argument("--camera-cards", type=int, default=300,
                        help="new cards per camera for the cameras bench")
    parser.add_argument("--retrain-cards", type=int, default=600,
                        help="new phone cards for the retrain bench")
    parser.add_argument("--classify-per-class", type=int, default=60,
                        help="images per class of each classify dataset")
    parser.add_argument("--requests", type=int, default=300, help="requests per serve run")
    parser.add_argument("--overload-seconds", type=float, default=300,
                        help="seconds at twice the service's capacity")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    runs = [tuple(pair.split(":", 1)) for pair in args.train]
    with tempfile.TemporaryDirectory(prefix="gradeline-bench-") as tmp:
        benches = {"factory": lambda: bench_factory(Path(tmp), args.cards),
                   "centering": lambda: bench_centering(Path(tmp), args.centering_cards),
                   "ingest": lambda: bench_ingest(Path(tmp), args.ingest),
                   "train": lambda: bench_train(Path(tmp), args.train_cards, runs),
                   "evaluate": lambda: bench_evaluate(Path(tmp), args.train_cards),
                   "segment": lambda: bench_segmentation(Path(tmp)),
                   "cameras": lambda: bench_cameras(Path(tmp), args.camera_cards),
                   "retrain": lambda: bench_retrain(Path(tmp), args.train_cards,
                                                    args.retrain_cards),
                   "classify": lambda: bench_classify(Path(tmp), args.classify_per_class),
                   "path": lambda: bench_path(Path(tmp)),
                   "serve": lambda: bench_serve(Path(tmp), args.requests),
                   "versus": lambda: bench_versus(Path(tmp), args.requests),
                   "overload": lambda: bench_overload(Path(tmp), args.overload_seconds),
                   "replicas": lambda: bench_replicas(Path(tmp), args.requests)}
        results = {name: benches[name]() for name in SECTIONS if name in args.only}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("\n\n".join(f"{TITLES[name]}\n{_table(rows)}" for name, rows in results.items()))

if __name__ == "__main__":
    main()
