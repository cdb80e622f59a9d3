"""The grading service on uvicorn, shut down gracefully: on SIGTERM (or Ctrl-C) it first says
not ready for `drain_seconds` while still answering, so a load balancer stops sending it new
requests, then stops accepting and gives requests in flight `graceful_shutdown_seconds`.

    DrainingServer(app, service, params).run()      # what `gradeline serve` runs

While draining, responses say `Connection: close`, so clients open new connections (which a
load balancer sends elsewhere) instead of reusing one the shutdown closes. A second signal
during the drain stops at once.
"""

from __future__ import annotations

import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from components.serving.params import ServeParams
from components.serving.service import GradingService


class CloseWhenDraining:
    """ASGI middleware: while the service drains, every response says `Connection: close`, so
    clients stop reusing connections the shutdown would close under them."""

    def __init__(self, app: ASGIApp, service: GradingService) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.service.draining:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first exit signal drains before it exits."""

    def __init__(self, app: FastAPI, service: GradingService, params: ServeParams,
                 host: str | None = None, port: int | None = None) -> None:
        super().__init__(uvicorn.Config(
            CloseWhenDraining(app, service), host=host or params.host, port=port or params.port,
            log_level="info",
            limit_concurrency=params.limit_concurrency,
            timeout_graceful_shutdown=round(params.graceful_shutdown_seconds)))
        self.service, self.drain_seconds = service, params.drain_seconds
        self._drain: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain, then exit; any later one: exit now."""
        if self._drain is not None or self.drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self.service.drain()
        self._drain = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        self._drain.daemon = True
        self._drain.start()
