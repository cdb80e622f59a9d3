"""Two `gradeline serve` replicas behind nginx, as `gradeline up --profile cluster` runs them
(cli/cluster.py's balancer), against one process: what a replica buys on this machine. Both
replicas and the single process log to one throwaway PostgreSQL, as a cluster's do.

The same photos and graph as benchmarks/serve.py (the fast profile's grader, full-size photos),
closed loop at 8 and 32 clients: one process answering directly, the same process behind nginx
(the balancer's own cost), and two replicas behind nginx.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from benchmarks.serve import closed_loop, served_graph_and_photos, serving
from cli.cluster import balancer_command, balancer_config
from cli.postgres import throwaway_postgres
from cli.supervisor import answers, start_process, stop_process
from components.serving.loopback import free_port, wait_until_up

CLIENTS = (8, 32)


@contextmanager
def balancer(folder: Path, replicas: list[str]) -> Iterator[str]:
    """nginx on a free port before the services at `replicas` (URLs); its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "balancer.conf").write_text(balancer_config(
        folder, port, [int(url.rsplit(":", 1)[1]) for url in replicas], 20_000_000))
    pid = start_process(balancer_command(folder), dict(os.environ), folder / "balancer.log",
                        cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", lambda: True, timeout=30)
        yield url
    finally:
        stop_process(pid)


def _row(setup: str, url: str, key: str, photos: list[bytes], requests: int,
         clients: int) -> dict[str, object]:
    asyncio.run(closed_loop(url, key, photos, 2 * clients, clients))  # warm-up
    latencies, statuses, seconds, _ = asyncio.run(closed_loop(url, key, photos, requests,
                                                              clients))
    return {"setup": setup, "clients": clients, "requests": requests,
            "answered_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "failed": sum(status != 200 for status in statuses)}


def bench_replicas(workdir: Path, requests: int = 300) -> list[dict[str, object]]:
    """One process, one behind nginx, two behind nginx, at 8 and 32 clients each."""
    graph, photos = served_graph_and_photos(workdir)
    rows = []
    with ExitStack() as stack:
        log = stack.enter_context(throwaway_postgres()).create_database("replicas")
        first, key, _ = stack.enter_context(serving(graph, workdir, 16, 256, log_uri=log))
        alone = stack.enter_context(balancer(workdir / "balancer-one", [first]))
        for clients in CLIENTS:
            rows.append(_row("one process", first, key, photos, requests, clients))
            rows.append(_row("one process behind nginx", alone, key, photos, requests,
                             clients))
        second, _, _ = stack.enter_context(serving(graph, workdir, 16, 256, log_uri=log))
        both = stack.enter_context(balancer(workdir / "balancer-two", [first, second]))
        assert answers(f"{both}/healthz")
        rows += [_row("two replicas behind nginx", both, key, photos, requests, clients)
                 for clients in CLIENTS]
    return rows
