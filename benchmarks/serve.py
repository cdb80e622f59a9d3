"""The grading service under load, over real HTTP on loopback: requests per second and latency
with and without micro-batching, and what a client sees beyond capacity.

The grader is the fast profile's network (params.yaml `train.grade.fast`: its input size, Lite0
with ImageNet weights and fresh heads) exported as evaluation exports it: latency depends on the
architecture and input size, not on what the heads learned, so no 10-minute training is needed.
It is served by the same app `gradeline serve` runs, in its own process; this process sends
factory card photos at full camera resolution from `concurrency` clients at once.

Targets (serve issue): micro-batching raises throughput over one photo per ONNX run; beyond
capacity, clients get 503 with Retry-After quickly instead of waiting in an unbounded queue.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from components.cards import synthesize_batch
from components.evaluate.export import untrained_grader_graph
from components.serving.keys import KeyStore, Role
from components.serving.loopback import free_port, wait_until_up
from components.serving.source import ServedModels
from components.serving.uploads import UploadLimits, decode_upload
from components.thumbnails import review_overlay, save_review_copy, save_thumbnail
from components.vision.models import OnnxGrader
from components.vision.properties import image_properties


class FixedModels:
    """A model source that always serves one loaded grader (the bench needs no registry)."""

    grader_name, detector_name = "card-grader", "defect-detector"

    def __init__(self, graph: Path) -> None:
        self.current = ServedModels(OnnxGrader(graph, "card-grader", 0))
        self.problems: dict[str, str] = {}

    def refresh(self) -> ServedModels:
        return self.current


def _serve(graph: Path, port: int, max_batch: int, max_queue: int, log_uri: str,
           keys_file: Path, drain_seconds: float) -> None:
    """The service's app on the server `gradeline serve` runs (draining on SIGTERM), in this
    (child) process."""
    from components.params import load_params
    from components.predlog import PredictionLog
    from components.serving.app import create_app
    from components.serving.keys import KeyStore
    from components.serving.metrics import ServiceMetrics
    from components.serving.params import ServeParams
    from components.serving.server import DrainingServer
    from components.serving.service import GradingService

    params = load_params("serve", ServeParams).model_copy(update={
        "drain_seconds": drain_seconds, "max_batch": max_batch, "max_queue": max_queue,
        "refresh_seconds": 3600})
    service = GradingService(FixedModels(graph), PredictionLog(log_uri), ServiceMetrics(),
                             params.service_config())
    DrainingServer(create_app(service, KeyStore(keys_file)), service, params, "127.0.0.1",
                   port).run()


@contextmanager
def serving(graph: Path, workdir: Path, max_batch: int, max_queue: int,
            drain_seconds: float = 0.0, log_uri: str | None = None
            ) -> Iterator[tuple[str, str, multiprocessing.Process]]:
    """The service in its own process on a free loopback port, logging to `log_uri` (default a
    SQLite file of its own): its URL, a client key, and the process (stopped at the end of the
    block)."""
    port = free_port()
    keys_file = workdir / "serve" / "keys.json"
    _, key = KeyStore(keys_file).create("bench client", Role.CLIENT)
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(graph, port, max_batch, max_queue,
                             log_uri or f"sqlite:///{workdir}/predictions-{max_batch}-"
                                        f"{max_queue}.db", keys_file, drain_seconds))
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/readyz", server.is_alive, timeout=120)
        yield url, key, server
    finally:
        server.terminate()
        server.join(timeout=60)


async def closed_loop(url: str, key: str, photos: list[bytes], requests: int,
                concurrency: int) -> tuple[list[float], list[int], float, bool]:
    """Send `requests` photos from `concurrency` clients; latencies (ms) of answered ones,
    every status, the wall time, and whether every 503 carried Retry-After."""
    latencies, statuses, retry_after = [], [], True
    sent = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal retry_after
        for i in sent:
            started = time.perf_counter()
            response = await http.post(f"{url}/v1/grade",
                                       files={"file": ("card.jpg", photos[i % len(photos)])},
                                       headers={"Authorization": f"Bearer {key}"})
            statuses.append(response.status_code)
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            elif response.status_code == 503:
                retry_after &= "Retry-After" in response.headers

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started, retry_after


def _measure(graph: Path, workdir: Path, photos: list[bytes], max_batch: int, max_queue: int,
             requests: int, concurrency: int) -> dict[str, object]:
    with serving(graph, workdir, max_batch, max_queue) as (url, key, _):
        asyncio.run(closed_loop(url, key, photos, concurrency * 2, concurrency))  # warm-up
        latencies, statuses, seconds, retry_after = asyncio.run(
            closed_loop(url, key, photos, requests, concurrency))
    answered = len(latencies)
    return {"max_batch": max_batch, "max_queue": max_queue, "concurrency": concurrency,
            "requests": requests, "answered_per_s": round(answered / seconds, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
            "status_503": statuses.count(503), "other_errors": sum(
                s not in (200, 503) for s in statuses), "retry_after_on_503": retry_after}


def _fast_profile_graph(path: Path) -> Path:
    """The fast profile's grader network as a calibrated ONNX graph with serving's metadata."""
    from components.params import load_params
    from components.train.params import TrainParams

    profile = load_params("train", TrainParams).grade.fast
    return untrained_grader_graph(path, profile.size, profile.frozen_blocks)


def served_graph_and_photos(workdir: Path) -> tuple[Path, list[bytes]]:
    """The fast profile's graph and 48 full-size factory photos, made once per workdir."""
    graph = workdir / "serve" / "model.onnx"
    if not graph.is_file():
        _fast_profile_graph(graph)
    batch = workdir / "serve-photos"
    if not batch.is_dir():
        synthesize_batch(batch, n=48, seed=5, camera="studio")
    return graph, [path.read_bytes() for path in sorted((batch / "images").glob("*.jpg"))]


def bench_serve(workdir: Path, requests: int = 300) -> list[dict[str, object]]:
    """Throughput and latency without and with micro-batching, then an overload."""
    graph, photos = served_graph_and_photos(workdir)
    return [_measure(graph, workdir, photos, 1, 256, requests, 16),
            _measure(graph, workdir, photos, 16, 256, requests, 16),
            _measure(graph, workdir, photos, 16, 8, requests, 64)]



class _Laps:
    """A stopwatch: each call records the milliseconds since the previous one under a name."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage], self._last = (now - self._last) * 1000, now


def _path_of_one(grader: OnnxGrader, data: bytes, name: str, out: Path) -> dict[str, float]:
    """Milliseconds of each stage of one photo's path through the service, in order."""
    lap = _Laps()
    bgr = decode_upload(data, UploadLimits())
    lap("decode the upload")
    prepared = grader.prepare(bgr)
    lap("prepare: find the card, measure centering, rectify")
    answer = grader.grade([prepared])[0]
    lap("the graph, batch 1")
    image_properties(bgr)
    lap("image properties")
    save_thumbnail(out, name, bgr)
    lap("thumbnail")
    centering = None if prepared.centering is None else prepared.centering.as_dict()
    save_review_copy(out, name, bgr, review_overlay(centering, [d.as_dict()
                                                               for d in answer.defects]))
    lap("review copy (photos the queue will want)")
    return lap.times


def bench_path(workdir: Path, rounds: int = 3) -> list[dict[str, object]]:
    """One photo's path through the service, each stage timed on one thread (the first round
    warms up): where a request's CPU goes, before anything is made faster."""
    graph, photos = served_graph_and_photos(workdir)
    grader = OnnxGrader(graph, "card-grader", 1, threads=1)
    laps = [_path_of_one(grader, data, f"photo-{number}", workdir / "path")
            for _ in range(rounds) for number, data in enumerate(photos)][len(photos):]
    medians = {stage: float(np.median([lap[stage] for lap in laps])) for stage in laps[0]}
    total = sum(medians.values())
    return [{"stage": stage, "p50_ms": round(median, 1),
             "p90_ms": round(float(np.percentile([lap[stage] for lap in laps], 90)), 1),
             "share": f"{median / total:.0%}"} for stage, median in medians.items()] + [
        {"stage": f"total ({len(photos)} photos, input {grader.size[0]}x{grader.size[1]})",
         "p50_ms": round(total, 1), "p90_ms": None, "share": "100%"}]
