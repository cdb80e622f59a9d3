"""Request bodies read with hard caps while they stream in, before anything is kept.

    app.add_middleware(BodyLimit, limits={"/v1/grade": 20_064_000}, default=65_536)
    files = await read_files(request, "files", max_files=32, max_bytes=20_000_000)

Starlette's own form parsing spools every uploaded file to disk and only then lets a route look
at its size or count; here a request is refused (413) as soon as its declared length, its bytes
so far, one file's bytes or the number of files passes its limit, and the files are kept in
memory, which the service reads them into anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse

from components.serving.uploads import UploadRejected

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_FIELD_BYTES = 1024  # a form's non-file fields: none is used, so none may be large


class _BodyTooLarge(Exception):
    """Raised from `receive` once a body passes its cap; BodyLimit answers 413."""


class BodyLimit:
    """ASGI middleware: at most `limits[path]` bytes of body per request (`default` for every
    other path), judged on Content-Length first and on the bytes received as they arrive."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 limits: dict[str, int], default: int) -> None:
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit, f"{int(declared):,} bytes declared")
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit, f"over {received:,} bytes sent")

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int,
                      seen: str) -> None:
        response = JSONResponse({"error": f"request body too large ({seen}); the limit of "
                                          f"{scope['path']} is {limit:,} bytes"},
                                status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


@dataclass
class _Part:
    """One part of a multipart body as it is parsed."""

    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


async def read_files(request: Request, field_name: str, max_files: int,
                     max_bytes: int) -> list[tuple[str, bytes]]:
    """(filename, bytes) of each file sent as `field_name` in a multipart/form-data body.
    Raises UploadRejected: 415 when the body is not multipart, 413 as soon as a file passes
    `max_bytes` or the request's files pass `max_files`, 422 when no file was sent or the
    body does not parse."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRejected(415, f"send the photos as multipart/form-data field "
                                  f"{field_name!r} (got Content-Type {kind.decode() or 'none'})")
    parts: list[_Part] = []
    header_name = bytearray()
    header_value = bytearray()
    files = 0

    def on_header_end() -> None:
        parts[-1].headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal files
        part = parts[-1]
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            part.filename = disposition[b"filename"].decode("utf-8", "replace") or "upload"
            files += 1
            if files > max_files:
                raise UploadRejected(413, f"more than {max_files} files in one request; "
                                          f"refused before reading the rest")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.data += data[start:end]
        limit = max_bytes if part.filename is not None else MAX_FIELD_BYTES
        if len(part.data) > limit:
            what = part.filename if part.filename is not None else f"field {part.name!r}"
            raise UploadRejected(413, f"{what} is over the {limit / 1e6:.1f} MB limit"
                                 if part.filename is not None else
                                 f"{what} is over {limit} bytes")

    parser = MultipartParser(options[b"boundary"], {
        "on_part_begin": lambda: parts.append(_Part()),
        "on_header_field": lambda data, start, end: header_name.extend(data[start:end]),
        "on_header_value": lambda data, start, end: header_value.extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise UploadRejected(422, f"the multipart body does not parse: {error}") from None
    uploads = [(part.filename, bytes(part.data)) for part in parts
               if part.name == field_name and part.filename is not None]
    if not uploads:
        raise UploadRejected(422, f"no file in form field {field_name!r}")
    return uploads
