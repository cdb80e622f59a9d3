"""Serving parameters from params.yaml (`serve:`), typed."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from components.params import StrictParams
from components.serving.service import ServiceConfig
from components.serving.uploads import UploadLimits


class ServeParams(StrictParams):
    """The `serve:` section of params.yaml: where the service listens and how it batches."""

    host: str = Field("127.0.0.1", description="interface to listen on; loopback by default")
    port: int = Field(8080, ge=1, le=65535)
    max_batch: int = Field(16, ge=1, description="photos per ONNX run")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a lone request waits for company")
    max_queue: int = Field(64, ge=1, description="photos inside the service at once (arrived, "
                           "not yet answered); one more gets 503 before any work")
    graph_lanes: int = Field(0, ge=0, description="batches run at once per model, each on one "
                             "core; 0: one per core")
    prepare_in_processes: bool = Field(False, description="decode and prepare photos in a "
                                       "worker process per core (else in threads of the "
                                       "service's own process)")
    max_files_per_request: int = Field(32, ge=1)
    refresh_seconds: float = Field(5.0, gt=0, description="how often the aliases are re-read")
    max_upload_bytes: int = Field(20_000_000, ge=1)
    max_pixels: int = Field(40_000_000, ge=1, description="larger images are refused as "
                            "decompression bombs, read from the header before decoding")
    request_timeout_s: float = Field(30.0, gt=0, description="one photo's whole answer; past "
                                     "it the client gets 503 with Retry-After")
    limit_concurrency: int = Field(256, ge=1, description="connections and tasks uvicorn takes "
                                   "at once before it answers 503 itself (keep it above "
                                   "max_queue, whose 503s carry Retry-After)")
    drain_seconds: float = Field(5.0, ge=0, description="after SIGTERM, how long /readyz says "
                                 "not ready while requests are still answered, so a load "
                                 "balancer stops sending before the port closes")
    graceful_shutdown_seconds: float = Field(30.0, gt=0, description="then, how long requests "
                                             "in flight get to finish")

    def service_config(self, thumbnails: Path | None = None) -> ServiceConfig:
        """The service's own settings from these parameters; `thumbnails` is where small
        copies of served photos go (none kept when None)."""
        return ServiceConfig(
            upload_limits=UploadLimits(max_bytes=self.max_upload_bytes,
                                       max_pixels=self.max_pixels),
            max_batch=self.max_batch, max_wait_ms=self.max_wait_ms, max_queue=self.max_queue,
            graph_lanes=self.graph_lanes or os.cpu_count() or 1,
            prepare_workers=(os.cpu_count() or 1) if self.prepare_in_processes else 0,
            max_files_per_request=self.max_files_per_request,
            refresh_seconds=self.refresh_seconds, request_timeout_s=self.request_timeout_s,
            thumbnails=thumbnails)
