"""Servers started on loopback by the demo, the benchmarks and the tests: a free port, a bounded
wait until a server answers (failing early if its process died), and `gradeline serve` as a
process of its own, ready.

    with serve_process(home, params_file, log) as url:
        served_champion(url, wanted=4)           # waits until version 4 answers as champion
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, alive: Callable[[], bool], timeout: float) -> None:
    """Return once `url` answers 200; fail if the server is no longer `alive()` or `timeout`
    seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive():
            raise RuntimeError(f"the server behind {url} exited before it answered")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


class ServiceNotReady(RuntimeError):
    """The grading service exited, or did not serve the champion asked for in time."""


@contextmanager
def serve_process(home: Path, params_file: Path, log: Path,
                  timeout: float = 180) -> Iterator[str]:
    """`gradeline serve` of `home` as its own process on a free loopback port (its output in
    `log`), ready to answer; its URL until the block ends, then it is stopped."""
    port = free_port()
    gradeline = Path(sys.executable).parent / "gradeline"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen([str(gradeline), "--home", str(home), "serve",
                                    "--port", str(port), "--params", str(params_file)],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        served_champion(url, None, process, timeout)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def served_champion(url: str, wanted: int | None, process: subprocess.Popen | None = None,
                    timeout: float = 60) -> int:
    """Wait until the service at `url` is ready and serves champion `wanted` (any, when None);
    that version. ServiceNotReady when its `process` exits or the time is up first."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceNotReady(f"the grading service exited with {process.returncode}")
        try:
            seen = httpx.get(f"{url}/readyz", timeout=5).json()
            version = seen.get("loaded", {}).get("champion", {}).get("version")
            if seen.get("ready") and wanted in (None, version):
                return int(version)
        except httpx.HTTPError as error:
            seen = str(error)
        time.sleep(0.5)
    raise ServiceNotReady(f"the service did not serve champion {wanted} within {timeout:.0f}s: "
                          f"{seen}")
