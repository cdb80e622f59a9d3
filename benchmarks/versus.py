"""`gradeline serve` against what a client team would run instead: `mlflow models serve` of the
same model, side by side on the same photos, concurrency and cores.

The model is the fast profile's grader (Lite0 with its ImageNet weights, untrained heads: speed
depends on the architecture and input size, not on what was learned), saved and logged as the
train flow logs a version (the pyfunc with its code, photos in) in a throwaway MLflow store, and
exported from the same weights as evaluation exports it (the ONNX graph `gradeline serve` runs).
`mlflow models serve --env-manager local` gets one worker per core, as its documentation
suggests for a CPU-bound model; clients post each photo as its API asks (base64 in a
`dataframe_split`), `gradeline serve` gets multipart uploads.

Targets (serving-speed issue): answered photos per second at 8 clients at least 3x `mlflow models
serve`, aim 5x; p50 at one client at most 25 ms for a 320 x 448 photo.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from benchmarks.serve import serving
from components.cards import synthesize_batch
from components.serving.loopback import free_port, wait_until_up

Send = Callable[[httpx.AsyncClient, bytes], Awaitable[httpx.Response]]
CONCURRENCY = (1, 8, 32)


def logged_fast_grader(workdir: Path) -> tuple[str, str, Path]:
    """The fast profile's grader logged as a pyfunc in a throwaway store under `workdir`, and
    its ONNX export: the tracking URI, the logged model's URI and the graph."""
    from components.evaluate.export import export_grader
    from components.params import load_params
    from components.tracking import TrackedRun
    from components.train.model import ORDINAL_TARGETS
    from components.train.params import TrainParams
    from components.train.pyfunc import log_image_model
    from components.train.rubric import CARD_RUBRIC
    from components.train.severity import map_metadata
    from components.train.spec import ModelSpec, save_model

    profile = load_params("train", TrainParams).grade.fast
    spec = ModelSpec(task="grade", classes=(), size=tuple(profile.size), rectify=True,
                     frozen_blocks=profile.frozen_blocks, dropout=profile.dropout)
    model = spec.build(imagenet=True).eval()
    folder = save_model(workdir / "versus" / "model", model, spec)
    graph = export_grader(model, spec.size, np.ones(len(ORDINAL_TARGETS)),
                          workdir / "versus" / "model.onnx", {
                              "spec": {"task": "grade", "size": list(spec.size), "rectify": True,
                                       "targets": list(ORDINAL_TARGETS),
                                       **map_metadata(CARD_RUBRIC)},
                              "conformal": {"threshold": 0.2, "coverage": 0.9,
                                            "calibration_items": 0},
                              "model": "card-grader", "version": 1, "data_version": "bench"})
    tracking_uri = f"sqlite:///{workdir / 'versus' / 'mlflow.db'}"
    run = TrackedRun.open(tracking_uri, str(workdir / "versus" / "artifacts"), "versus",
                          "grade-fast", None)
    example = next(iter(sorted((_photos_folder(workdir) / "images").glob("*.jpg"))))
    with run.active():
        model_uri = log_image_model(folder, example)
    run.close("FINISHED")
    return tracking_uri, model_uri, graph


def _photos_folder(workdir: Path) -> Path:
    batch = workdir / "versus-photos"
    if not batch.is_dir():
        synthesize_batch(batch, n=40, seed=6, camera="phone")
    return batch


@contextmanager
def mlflow_serving(tracking_uri: str, model_uri: str) -> Iterator[str]:
    """`mlflow models serve` of `model_uri` with a worker per core, on a free loopback port."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the scoring server runs `uvicorn` from PATH
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(os.cpu_count() or 1)],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
             "MLFLOW_TRACKING_URI": tracking_uri},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/ping", lambda: server.poll() is None, timeout=120)
        yield url
    finally:
        os.killpg(server.pid, 15)  # the workers too
        server.wait(timeout=30)


async def _closed_loop(send: Send, photos: list[bytes], requests: int,
                       concurrency: int) -> tuple[list[float], int, float]:
    """`requests` photos from `concurrency` clients: latencies (ms) of answers, failures, wall."""
    latencies: list[float] = []
    failures = 0
    sent = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        for i in sent:
            started = time.perf_counter()
            response = await send(http, photos[i % len(photos)])
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - started


def _measure(server: str, send: Send, photos: list[bytes],
             requests: int) -> list[dict[str, object]]:
    rows = []
    for concurrency in CONCURRENCY:
        asyncio.run(_closed_loop(send, photos, 2 * concurrency, concurrency))  # warm-up
        latencies, failures, seconds = asyncio.run(
            _closed_loop(send, photos, requests, concurrency))
        rows.append({"server": server, "clients": concurrency, "requests": requests,
                     "answered_per_s": round(len(latencies) / seconds, 1),
                     "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                     "p99_ms": round(float(np.percentile(latencies, 99)), 1),
                     "failed": failures})
    return rows


def bench_versus(workdir: Path, requests: int = 200) -> list[dict[str, object]]:
    """Both servers at 1, 8 and 32 clients, then the ratio of throughput and p50 per level."""
    tracking_uri, model_uri, graph = logged_fast_grader(workdir)
    photos = [p.read_bytes() for p in sorted((_photos_folder(workdir) / "images").glob("*.jpg"))]

    with serving(graph, workdir, 16, 256) as (url, key, _):
        async def upload(http: httpx.AsyncClient, photo: bytes) -> httpx.Response:
            return await http.post(f"{url}/v1/grade", files={"file": ("card.jpg", photo)},
                                   headers={"Authorization": f"Bearer {key}"})
        ours = _measure("gradeline serve", upload, photos, requests)

    with mlflow_serving(tracking_uri, model_uri) as mlflow_url:
        async def invoke(http: httpx.AsyncClient, photo: bytes) -> httpx.Response:
            body = {"dataframe_split": {"columns": ["image"],
                                        "data": [[base64.b64encode(photo).decode()]]}}
            return await http.post(f"{mlflow_url}/invocations", json=body)
        theirs = _measure("mlflow models serve", invoke, photos, requests)

    ratios = [{"server": "ratio", "clients": a["clients"],
               "answered_per_s": round(a["answered_per_s"] / b["answered_per_s"], 2),
               "p50_ms": round(b["p50_ms"] / a["p50_ms"], 2)} for a, b in zip(ours, theirs,
                                                                               strict=True)]
    return ours + theirs + ratios
