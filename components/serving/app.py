"""The grading service's HTTP API: FastAPI routes over a `GradingService`.

    app = create_app(service)                 # uvicorn.run(app, host="127.0.0.1", port=8080)

    curl -F file=@card.jpg http://127.0.0.1:8080/v1/grade
    curl -F files=@a.jpg -F files=@b.jpg http://127.0.0.1:8080/v1/grade/batch
    curl -H 'Content-Type: application/json' -d '{"request_id": "abc", "grade": 8,
         "grader": "ada"}' http://127.0.0.1:8080/v1/feedback

Each handler only translates HTTP to the service and its errors back: an unreadable upload is a
4xx naming the problem, a full queue or a missing champion a 503 with Retry-After. A client may
send its own `X-Request-ID`; the answer carries the id either way.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from components.serving.batcher import Overloaded
from components.serving.metrics import ServiceMetrics
from components.serving.params import ServeParams
from components.serving.predlog import PredictionLog
from components.serving.service import GradingService, NotReady
from components.serving.source import ModelSource
from components.serving.uploads import UploadRejected
from components.settings import GradelineSettings

REQUEST_ID_HEADER = "X-Request-ID"


async def _read_upload(upload: UploadFile, service: GradingService) -> bytes:
    """The upload's bytes, refused once it passes the size limit (never read further)."""
    limit = service.config.upload_limits.max_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadRejected(413, f"{upload.filename or 'upload'} is over the "
                                  f"{limit / 1e6:.1f} MB limit")
    return data


class ExpertGrade(BaseModel):
    """An expert's grade of a photo the service graded, sent back by the client."""

    request_id: str = Field(description="the request id of the graded photo")
    grade: int = Field(ge=1, le=10)
    grader: str = Field(min_length=1, description="who graded it")


def create_app(service: GradingService) -> FastAPI:
    """The API over `service`, which it starts and stops with the app."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Gradeline grading service", lifespan=lifespan,
                  description="Grades of trading-card photos with the registry's champion model.")

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, error: UploadRejected) -> JSONResponse:
        service.metrics.count_rejected_upload(error.reason)
        return JSONResponse({"error": error.message,
                             "request_id": request.headers.get(REQUEST_ID_HEADER)},
                            status_code=error.status)

    @app.exception_handler(Overloaded)
    @app.exception_handler(NotReady)
    async def unavailable(request: Request, error: Overloaded | NotReady) -> JSONResponse:
        service.metrics.count_request(service.source.grader_name, "", "", 503)
        return JSONResponse({"error": str(error) or "the service is at capacity",
                             "request_id": request.headers.get(REQUEST_ID_HEADER)},
                            status_code=503,
                            headers={"Retry-After": str(math.ceil(error.retry_after_s))})

    @app.post("/v1/grade", summary="Grade one photo")
    async def grade(request: Request,
                    file: Annotated[UploadFile, File()]) -> dict[str, object]:
        data = await _read_upload(file, service)
        return await service.grade(data, request.headers.get(REQUEST_ID_HEADER))

    @app.post("/v1/grade/batch", summary="Grade several photos; each gets its own answer")
    async def grade_batch(request: Request,
                          files: Annotated[list[UploadFile], File()]) -> dict[str, object]:
        uploads = [await _read_upload(upload, service) for upload in files]
        return {"results": await service.grade_many(uploads,
                                                    request.headers.get(REQUEST_ID_HEADER))}

    @app.post("/v1/feedback", status_code=202,
              summary="An expert's grade of a served photo, for canary analysis and monitoring")
    async def feedback(expert: ExpertGrade) -> dict[str, str]:
        try:
            await service.record_expert_grade(expert.request_id, expert.grade, expert.grader)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        return {"status": "recorded", "request_id": expert.request_id}

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="A champion is loaded and answering")
    async def readyz() -> JSONResponse:
        ready, details = service.readiness()
        return JSONResponse({"ready": ready, **details}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def app_from_settings(settings: GradelineSettings, params: ServeParams) -> FastAPI:
    """The service of this home: its registry, its prediction log, graphs cached under
    <cache>/serving, thumbnails of served photos in the home's thumbnails folder."""
    source = ModelSource(str(settings.mlflow_tracking_uri), settings.cache_dir / "serving")
    return create_app(GradingService(source, PredictionLog(str(settings.prediction_log_uri)),
                                     ServiceMetrics(),
                                     params.service_config(settings.thumbnails_dir)))
