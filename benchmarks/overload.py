"""The grading service at twice its capacity, then stopped with SIGTERM under that load.

Its capacity is first measured closed-loop (clients sending as fast as answers come); then
photos arrive open-loop at twice that rate for `seconds`, as a burst of clients would send them
whatever the service does. Reported: what was answered and at which p50/p99, what was refused
(every refusal must be a 503 with Retry-After), any other failure, and the server's memory
(resident set, sampled every second: it must stay bounded). Last, SIGTERM arrives during the
same load: the service drains (readiness 503, answers continue), then stops accepting and lets
requests in flight finish; no request it accepted may fail. The sender acts as a load balancer
would: it polls /readyz every half second and sends nothing while it says 503 (`rerouted`).
Without that, a request written just as the port closes can be cut off (measured: 1 in about
1500 in some runs), which is why the drain exists.

Target (trust issue): no crash, bounded memory, refusals all 503 + Retry-After, no failed
answer across the SIGTERM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.serve import closed_loop, served_graph_and_photos, serving

DRAIN_SECONDS = 2.0


@dataclass
class _Tally:
    """What an open-loop burst saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    refused_without_retry_after: int = 0
    failed: list[str] = field(default_factory=list)  # errors on requests the server took
    not_accepted: int = 0  # connection refused: the port closed after the drain
    rerouted: int = 0  # not sent: /readyz said 503, so a load balancer sends it elsewhere
    rss_mb: list[float] = field(default_factory=list)
    signalled_at: float | None = None  # perf_counter of the SIGTERM
    answered_after_signal: int = 0

    def signal(self, send: Callable[[], None]) -> Callable[[], None]:
        """`send`, noting when it happened."""
        def sending() -> None:
            self.signalled_at = time.perf_counter()
            send()
        return sending


def _rss_mb(pid: int) -> float | None:
    """The process's resident memory, None once it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")),
                None)


async def _open_loop(url: str, key: str, photos: list[bytes], rate: float, seconds: float,
                     pid: int, tally: _Tally,
                     on_second: dict[int, Callable[[], None]] | None = None) -> None:
    """Send photos at `rate` per second for `seconds`, whatever the answers, as a load balancer
    in front would: it reads /readyz every half second and sends nothing while it says 503.
    Calls `on_second[s]()` when second `s` begins (the SIGTERM)."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    ready = True

    async def balancer(http: httpx.AsyncClient) -> None:
        nonlocal ready
        while True:
            try:
                ready = (await http.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                ready = False
            await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        health = asyncio.create_task(balancer(http))

        async def one(number: int) -> None:
            started = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/grade", headers={
                    "Authorization": f"Bearer {key}"},
                    files={"file": ("card.jpg", photos[number % len(photos)])})
            except httpx.ConnectError:
                tally.not_accepted += 1
                return
            except httpx.HTTPError as error:
                tally.failed.append(f"{type(error).__name__}: {error}")
                return
            tally.statuses.append(response.status_code)
            if response.status_code == 200:
                tally.latencies.append((time.perf_counter() - started) * 1000)
                tally.answered_after_signal += tally.signalled_at is not None
            elif response.status_code == 503:
                tally.refused_without_retry_after += "Retry-After" not in response.headers
            else:
                tally.failed.append(f"HTTP {response.status_code}: {response.text[:100]}")

        tasks, begun, sent, second = set(), time.perf_counter(), 0, -1
        while (elapsed := time.perf_counter() - begun) < seconds:
            if int(elapsed) != second:
                second = int(elapsed)
                if (rss := _rss_mb(pid)) is not None:
                    tally.rss_mb.append(rss)
                if on_second and second in on_second:
                    on_second[second]()
            while sent < elapsed * rate:
                if ready:
                    task = asyncio.create_task(one(sent))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    tally.rerouted += 1
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        health.cancel()


def _figures(phase: str, rate: float, seconds: float, tally: _Tally) -> dict[str, object]:
    answered = tally.statuses.count(200)
    return {"phase": phase, "offered_per_s": round(rate, 1), "seconds": seconds,
            "answered": answered, "answered_per_s": round(answered / seconds, 1),
            "p50_ms": round(float(np.percentile(tally.latencies, 50)), 1)
            if tally.latencies else None,
            "p99_ms": round(float(np.percentile(tally.latencies, 99)), 1)
            if tally.latencies else None,
            "status_503": tally.statuses.count(503),
            "503_without_retry_after": tally.refused_without_retry_after,
            "failed": len(tally.failed), "failures": sorted(set(tally.failed))[:3],
            "not_accepted_after_close": tally.not_accepted, "rerouted": tally.rerouted,
            "rss_mb_first_max_last": [round(tally.rss_mb[0]), round(max(tally.rss_mb)),
                                      round(tally.rss_mb[-1])] if tally.rss_mb else None}


def bench_overload(workdir: Path, seconds: float = 300) -> list[dict[str, object]]:
    """Capacity, `seconds` at twice it, then SIGTERM under the same load."""
    graph, photos = served_graph_and_photos(workdir)
    rows = []
    with serving(graph, workdir, 16, 64, DRAIN_SECONDS) as (url, key, server):
        asyncio.run(closed_loop(url, key, photos, 32, 16))  # warm-up
        latencies, _, wall, _ = asyncio.run(closed_loop(url, key, photos, 200, 32))
        capacity = len(latencies) / wall
        rows.append({"phase": "capacity (closed loop, 32 clients)",
                     "answered_per_s": round(capacity, 1),
                     "p99_ms": round(float(np.percentile(latencies, 99)), 1)})
        overload = _Tally()
        asyncio.run(_open_loop(url, key, photos, 2 * capacity, seconds, server.pid, overload))
        rows.append(_figures("2x capacity", 2 * capacity, seconds, overload))
        stopping, tail = _Tally(), 10.0
        asyncio.run(_open_loop(url, key, photos, 2 * capacity, tail, server.pid, stopping,
                               on_second={3: stopping.signal(server.terminate)}))
        server.join(timeout=60)
        rows.append({**_figures("SIGTERM at 3 s under 2x load", 2 * capacity, tail, stopping),
                     "answered_after_sigterm": stopping.answered_after_signal})
    return rows
