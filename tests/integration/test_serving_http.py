"""The grading service on a real uvicorn server on loopback, where the bytes of a request arrive
as a client sends them: an oversized upload streamed without a length is cut off at its cap, and
a shutdown drains before it stops."""

from __future__ import annotations

import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from components.serving.loopback import free_port, wait_until_up
from components.serving.params import ServeParams
from components.serving.server import DrainingServer
from components.serving.service import GradingService
from components.serving.source import ServedModels
from components.serving.uploads import UploadLimits
from tests.unit.test_serving_service import StandInGrader, _api, _photo, _service


class _Wire:
    """ASGI wrapper outside the whole app: the size of each body message the app read, and the
    statuses it answered."""

    def __init__(self, app: Callable) -> None:
        self.app, self.body_reads, self.statuses = app, [], []

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        async def counted() -> dict:
            message = await receive()
            self.body_reads.append(len(message.get("body", b"")))
            return message

        async def watched(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, counted, watched)


@pytest.fixture()
def live_service(tmp_path: Path) -> Iterator[tuple[int, dict[str, dict], _Wire]]:
    """The app on uvicorn in a thread on a loopback port (1 MB uploads at most)."""
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)),
                       upload_limits=UploadLimits(max_bytes=1_000_000))
    api, keys = _api(service, tmp_path)
    wire = _Wire(api.app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(wire, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", thread.is_alive, timeout=30)
        wire.statuses.clear()
        yield port, keys, wire
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _stream_chunked(port: int, headers: dict[str, str], total: int) -> int:
    """POST a multipart photo of `total` bytes to /v1/grade in 64 KiB chunks with no
    Content-Length (as a client streaming a file does), until the server answers or closes;
    how many bytes went out."""
    boundary = "gradeline-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"huge.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    request = (f"POST /v1/grade HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
               + "\r\n").encode()
    sent = 0
    chunk = head + b"\xff" * (64 * 1024 - len(head))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        try:
            while sent < total and not select.select([connection], [], [], 0)[0]:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                chunk = b"\xff" * len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection on a body it refused
    return sent


def test_an_oversized_upload_streamed_without_a_length_is_cut_off_at_the_cap(
        live_service: tuple[int, dict[str, dict], _Wire]) -> None:
    port, keys, wire = live_service
    sent = _stream_chunked(port, keys["client"], total=50_000_000)

    assert wire.statuses == [413]
    # Read up to the message that crossed the 1 MB cap and not one message further. (One message
    # holds whatever the server buffered since the last read, so its size varies with load.)
    assert sum(wire.body_reads[:-1]) <= 1_000_000 < sum(wire.body_reads)
    # The client was stopped long before its 50 MB: what it sent past the cap sat in loopback
    # socket buffers (a few MB), never read.
    assert sent < 20_000_000


@contextmanager
def draining_server(service: GradingService, tmp_path: Path, drain_seconds: float = 0
                    ) -> Iterator[tuple[str, dict[str, dict], DrainingServer, threading.Thread]]:
    """`service` behind its app on a loopback port in a thread, started and drained as
    `gradeline serve` does: its URL, a key's headers per role, the server and its thread; sent
    SIGTERM at the end of the block if the test has not."""
    api, keys = _api(service, tmp_path)
    port = free_port()
    server = DrainingServer(api.app, service, ServeParams(drain_seconds=drain_seconds),
                            "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/readyz", thread.is_alive, timeout=30)
        yield url, keys, server, thread
    finally:
        server.handle_exit(signal.SIGTERM, None)  # what the signal handler calls
        thread.join(timeout=30)


def test_sigterm_drains_first_then_stops(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)))
    with draining_server(service, tmp_path, drain_seconds=1.5) as (url, keys, server, thread):
        server.handle_exit(signal.SIGTERM, None)
        ready = httpx.get(f"{url}/readyz")
        answered = httpx.post(f"{url}/v1/grade", headers=keys["client"],
                              files={"file": ("card.jpg", _photo())})
        thread.join(timeout=30)

    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert answered.status_code == 200  # still answering while the balancer catches up
    assert not thread.is_alive()  # and stopped after the drain
