"""The grading service on a real uvicorn server on loopback, where the bytes of a request arrive
as a client sends them: an oversized upload streamed without a length is cut off at its cap."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from components.serving.source import ServedModels
from components.serving.uploads import UploadLimits
from tests.servers import free_port, wait_until_up
from tests.unit.test_serving_service import StandInGrader, _api, _service


@pytest.fixture()
def live_service(tmp_path: Path) -> Iterator[tuple[int, dict[str, dict]]]:
    """The app on uvicorn in a thread on a loopback port (1 MB uploads at most)."""
    service = _service(tmp_path, ServedModels(StandInGrader(1, 9)),
                       upload_limits=UploadLimits(max_bytes=1_000_000))
    api, keys = _api(service, tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", thread.is_alive, timeout=30)
        yield port, keys
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _stream_chunked(port: int, headers: dict[str, str], total: int) -> tuple[bytes, int]:
    """POST a multipart photo of `total` bytes to /v1/grade in chunks, with no Content-Length
    (as a client streaming a file does); the answer and how many bytes went out before it."""
    boundary = "gradeline-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"huge.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    request = (f"POST /v1/grade HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
               + "\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        chunk = head + b"\xff" * (64 * 1024 - len(head))
        connection.setblocking(False)
        answer = b""
        while sent < total and not answer:
            try:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                chunk = b"\xff" * len(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            with contextlib.suppress(BlockingIOError):
                answer = connection.recv(65536)
        connection.setblocking(True)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            more = connection.recv(65536)
            if not more:
                break
            answer += more
    return answer, sent


def test_an_oversized_upload_streamed_without_a_length_is_cut_off_at_the_cap(
        live_service: tuple[int, dict[str, dict]]) -> None:
    port, keys = live_service
    answer, sent = _stream_chunked(port, keys["client"], total=50_000_000)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    assert b"over the 1.0 MB limit" in rest or b"request body too large" in rest
    assert sent < 5_000_000  # refused at about the 1 MB cap, never read to the end
