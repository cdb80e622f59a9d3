"""The grading service's HTTP API: FastAPI routes over a `GradingService`, behind API keys.

    app = create_app(service, KeyStore(settings.keys_file))   # uvicorn.run(app, port=8080)

    curl -H "Authorization: Bearer $KEY" -F file=@card.jpg http://127.0.0.1:8080/v1/grade
    curl -H "Authorization: Bearer $KEY" -F files=@a.jpg -F files=@b.jpg \
         http://127.0.0.1:8080/v1/grade/batch
    curl -H "Authorization: Bearer $EXPERT_KEY" -H 'Content-Type: application/json' \
         -d '{"request_id": "<id of the answer>", "grade": 8}' http://127.0.0.1:8080/v1/feedback

Every route but /healthz and /readyz needs a key (`keys.Role`): any role grades, experts send
their grades (recorded under the key's name, never a name in the body), operators read metrics
and make the service re-read the registry. Each handler only translates HTTP to the service and
its errors back: an unreadable upload is a 4xx naming the problem, a full queue or a missing
champion a 503 with Retry-After. Bodies are capped while they stream in (`bodies.py`). The
service names every request itself; the `X-Request-ID` a client sends comes back as its
`correlation_id`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from components.box_reviews import BoxReviewError, BoxReviews
from components.experts import agreement_with_gold, agreement_with_panel
from components.oncall import tell_on_call
from components.predlog import PredictionLog
from components.reviews import (
    AUDIT,
    GOLD,
    ReviewParams,
    ReviewQueue,
)
from components.serving.batcher import Overloaded
from components.serving.bodies import BodyLimit, read_files
from components.serving.keys import AccessDenied, ApiKey, KeyStore, Role
from components.serving.metrics import ServiceMetrics
from components.serving.params import ServeParams
from components.serving.service import GradingService, NotReady
from components.serving.source import ModelSource
from components.serving.uploads import UploadRejected
from components.settings import GradelineSettings
from components.thumbnails import read_review_copy, thumbnail_path
from model_registry.audit import AuditLog
from model_registry.guard import GuardReport, restore_release
from model_registry.releases import Releases

REQUEST_ID_HEADER = "X-Request-ID"
CAMERA_HEADER = "X-Camera"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the files of one request
SMALL_BODY = 16 * 1024  # feedback and every other route: a few fields of JSON
REVIEW_PAGE = Path(__file__).with_name("review.html")  # the experts' page
_CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_CAMERA = re.compile(r"[\x21-\x7e]{1,64}")
_bearer = HTTPBearer(auto_error=False, description="an API key from `gradeline keys create`")
_PHOTO_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"]}}}}}
_PHOTOS_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


Aspect = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]


class ExpertGrade(BaseModel):
    """An expert's grade of a photo the service graded; who graded it is the key's holder."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128,
                            description="the request_id of the service's answer")
    grade: int = Field(ge=1, le=10)
    subgrades: dict[Aspect, Annotated[int, Field(ge=1, le=10)]] | None = Field(
        None, max_length=8, description="the expert's subgrades by aspect (the rubric's: "
        "centering, corners, edges, surface for cards)")


class ReviewedBox(BaseModel):
    """One defect a reviewer sees on the photo, in the uploaded photo's pixels."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    defect_class: str = Field(alias="class", min_length=1, max_length=64)
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2")


class BoxReview(BaseModel):
    """A reviewer's corrected boxes of a photo the service answered: every defect on it (an
    empty list: none), what the detector's precision and recall are measured against."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128,
                            description="the request_id of the service's answer")
    boxes: list[ReviewedBox] = Field(max_length=256)


def _camera(request: Request) -> str | None:
    """The camera the client names (X-Camera), kept with each answer for the discrepancy
    report; refused when it could not be logged as it is."""
    value = request.headers.get(CAMERA_HEADER)
    if value is not None and not _CAMERA.fullmatch(value):
        raise UploadRejected(422, f"{CAMERA_HEADER} must be 1 to 64 printable ASCII characters "
                                  "without spaces", "bad_camera")
    return value


def _correlation_id(request: Request) -> str | None:
    """The client's own request id, kept beside the service's; refused when it could not be
    logged as it is."""
    value = request.headers.get(REQUEST_ID_HEADER)
    if value is not None and not _CORRELATION_ID.fullmatch(value):
        raise UploadRejected(422, f"{REQUEST_ID_HEADER} must be 1 to 128 printable ASCII "
                                  "characters without spaces", "bad_request_id")
    return value


def create_app(service: GradingService, keys: KeyStore,
               review: ReviewParams | None = None) -> FastAPI:
    """The API over `service`, which it starts and stops with the app; `keys` says who may
    call it; `review` sets its review queue (params.yaml's defaults when None)."""
    queue = ReviewQueue(service.log, review or ReviewParams())
    box_reviews = BoxReviews(service.log)
    # The service keeps a large copy of each photo the queue will want: one audit share.
    service.config = replace(service.config, audit_share=queue.params.audit_share)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    def allowed(*roles: Role) -> Callable[..., ApiKey]:
        """A dependency: the caller's key, which must hold one of `roles`."""
        def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(_bearer)]) -> ApiKey:
            key = keys.authenticate(credentials.credentials if credentials else None)
            if key.role not in roles:
                raise AccessDenied(403, f"key {key.key_id} ({key.name}) has role {key.role}; "
                                        f"this needs {' or '.join(roles)}")
            return key
        return authorized

    anyone = Depends(allowed(Role.CLIENT, Role.EXPERT, Role.OPERATOR))
    an_expert = Depends(allowed(Role.EXPERT))
    limits = service.config.upload_limits
    app = FastAPI(title="Gradeline grading service", lifespan=lifespan,
                  description="Grades of trading-card photos with the registry's champion model.")
    app.state.service = service
    app.add_middleware(BodyLimit, default=SMALL_BODY, limits={
        "/v1/grade": limits.max_bytes + MULTIPART_OVERHEAD,
        "/v1/grade/batch": service.config.max_files_per_request * limits.max_bytes
        + MULTIPART_OVERHEAD})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and fails (500) on a body that is not UTF-8.
        problems = [{"loc": [str(part) for part in problem["loc"]], "msg": problem["msg"]}
                    for problem in error.errors()]
        return JSONResponse({"error": "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}"
                                                for p in problems), "detail": problems},
                            status_code=422)

    @app.exception_handler(AccessDenied)
    async def denied(_: Request, error: AccessDenied) -> JSONResponse:
        service.metrics.count_denied(error.status)
        return JSONResponse({"error": error.message}, status_code=error.status,
                            headers={"WWW-Authenticate": "Bearer"} if error.status == 401
                            else None)

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, error: UploadRejected) -> JSONResponse:
        service.metrics.count_rejected_upload(error.reason)
        return JSONResponse({"error": error.message,
                             "correlation_id": request.headers.get(REQUEST_ID_HEADER)},
                            status_code=error.status)

    @app.exception_handler(Overloaded)
    @app.exception_handler(NotReady)
    async def unavailable(request: Request, error: Overloaded | NotReady) -> JSONResponse:
        service.metrics.count_request(service.source.grader_name, "", "", 503)
        return JSONResponse({"error": str(error) or "the service is at capacity",
                             "correlation_id": request.headers.get(REQUEST_ID_HEADER)},
                            status_code=503,
                            headers={"Retry-After": str(math.ceil(error.retry_after_s))})

    @app.post("/v1/grade", summary="Grade one photo", dependencies=[anyone],
              openapi_extra=_PHOTO_FORM)
    async def grade(request: Request) -> JSONResponse:
        correlation_id, camera = _correlation_id(request), _camera(request)
        [(_, data)] = await read_files(request, "file", 1, limits.max_bytes)
        answer = await service.grade(data, correlation_id, camera=camera)
        # The answer is plain JSON already: a response of its own skips FastAPI's encoder,
        # which took 0.34 ms an answer against 0.05 for json.dumps (measured).
        return JSONResponse(answer, headers={REQUEST_ID_HEADER: str(answer["request_id"])})

    @app.post("/v1/grade/batch", summary="Grade several photos; each gets its own answer",
              dependencies=[anyone], openapi_extra=_PHOTOS_FORM)
    async def grade_batch(request: Request) -> JSONResponse:
        correlation_id, camera = _correlation_id(request), _camera(request)
        uploads = await read_files(request, "files", service.config.max_files_per_request,
                                   limits.max_bytes)
        return JSONResponse({"results": await service.grade_many(
            [data for _, data in uploads], correlation_id, camera)})

    @app.post("/v1/feedback", status_code=202,
              summary="An expert's grade of a served photo, for canary analysis and monitoring")
    async def feedback(expert: ExpertGrade, key: ApiKey = an_expert) -> dict[str, str]:
        try:
            await service.record_expert_grade(expert.request_id, expert.grade, key.name,
                                              expert.subgrades)
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        await asyncio.to_thread(queue.release, expert.request_id, key.name)
        return {"status": "recorded", "request_id": expert.request_id, "grader": key.name}

    @app.post("/v1/feedback/boxes", status_code=202,
              summary="A reviewer's corrected defect boxes of a served photo, for the "
                      "detector's precision and recall per class")
    async def box_feedback(review: BoxReview, key: ApiKey = an_expert) -> dict[str, object]:
        boxes = [{"class": b.defect_class, "box": b.box} for b in review.boxes]
        try:
            await asyncio.to_thread(box_reviews.record, review.request_id, boxes, key.name,
                                    datetime.now(UTC))
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        except BoxReviewError as error:
            raise HTTPException(422, str(error)) from None
        return {"status": "recorded", "request_id": review.request_id, "reviewer": key.name,
                "boxes": len(boxes)}

    @app.get("/review", include_in_schema=False)
    async def review_page() -> FileResponse:
        """The experts' page: it signs in with an expert key and uses the routes below."""
        return FileResponse(REVIEW_PAGE, media_type="text/html")

    @app.get("/v1/review/next", summary="The next served photo this expert should grade",
             responses={204: {"description": "nothing waits for this expert"}})
    async def review_next(key: ApiKey = an_expert) -> Response:
        """Leases the item to the caller; the model's answer is withheld, so it cannot anchor
        the expert's grade (what it measured is drawn: the card's outline, its print frame, the
        defects found). The grade goes to POST /v1/feedback, which ends the lease."""
        now = datetime.now(UTC)
        waiting = await asyncio.to_thread(queue.waiting_for, key.name, now)
        item = await asyncio.to_thread(queue.lease_next, key.name, now, waiting)
        if item is None:
            return Response(status_code=204)
        kept = _review_copy(item.request_id)
        answers = await asyncio.to_thread(service.log.answers_to, item.request_id)
        # A gold item shows as audited: an expert who knew it was a test would grade it apart.
        reasons = [AUDIT if reason == GOLD else reason for reason in item.reasons]
        return JSONResponse({"request_id": item.request_id, "reasons": reasons,
                             "graded_by": len(item.graders), "wanted": item.wanted,
                             "waiting": len(waiting),
                             "aspects": sorted((answers[0]["subgrades"] or {}) if answers
                                               else {}),
                             "lease_seconds": queue.params.lease_seconds,
                             "photo": f"/v1/review/{item.request_id}/photo",
                             "overlay": kept[1] if kept else None})

    def _review_copy(request_id: str) -> tuple[Path, dict[str, object]] | None:
        folder = service.config.thumbnails
        return read_review_copy(folder, request_id) if folder is not None else None

    @app.get("/v1/review/{request_id}/photo", summary="The photo of an item the caller holds",
             response_class=FileResponse)
    async def review_photo(request_id: str, key: ApiKey = an_expert) -> FileResponse:
        """The large copy kept for review, or the thumbnail when none was kept."""
        if not await asyncio.to_thread(queue.holds, request_id, key.name, datetime.now(UTC)):
            raise AccessDenied(403, f"{key.name} holds no lease on {request_id!r}: ask "
                                    f"/v1/review/next for an item")
        folder = service.config.thumbnails
        kept = _review_copy(request_id)
        path = kept[0] if kept else thumbnail_path(folder, request_id) if folder else None
        if path is None or not path.is_file():
            raise HTTPException(404, f"no photo of {request_id!r} was kept")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/v1/review/{request_id}/answer",
             summary="The model's answer to a photo, once the caller has graded it")
    async def review_answer(request_id: str, key: ApiKey = an_expert) -> dict[str, object]:
        """Shown only after the expert's own grade is in, so it never anchors it."""
        mine = await asyncio.to_thread(service.log.expert_grade_by, request_id, key.name)
        if mine is None:
            raise AccessDenied(403, f"grade {request_id!r} first (POST /v1/feedback): the "
                                    "model's answer is shown after the expert's")
        rows = await asyncio.to_thread(service.log.answers_to, request_id)
        return {"request_id": request_id, "your_grade": mine, "answers": rows}

    @app.get("/v1/review/me", summary="The caller's own agreement with the other experts "
             "and with the gold items' known grades")
    async def review_me(key: ApiKey = an_expert) -> dict[str, object]:
        panel = await asyncio.to_thread(service.log.expert_panel)
        gold = await asyncio.to_thread(queue.gold)
        return {**agreement_with_panel(panel, key.name),
                "gold": agreement_with_gold(panel, gold, key.name)}

    @app.post("/v1/admin/refresh", dependencies=[Depends(allowed(Role.OPERATOR))],
              summary="Re-read the registry's aliases now instead of at the next refresh")
    async def refresh() -> dict[str, object]:
        models = await service.refresh()
        return {"loaded": models.loaded(), "canary_share": models.canary_share}

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="A champion is loaded and answering")
    async def readyz() -> JSONResponse:
        ready, details = service.readiness()
        return JSONResponse({"ready": ready, **details}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics",
             dependencies=[Depends(allowed(Role.OPERATOR))])
    async def metrics() -> Response:
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def put_back_and_tell(settings: GradelineSettings, releases: Releases,
                      metrics: ServiceMetrics) -> Callable[[GuardReport], None]:
    """What the service does with a release changed by hand: count it, put the registry back
    to the audited state, and tell on-call (the home's alert log and its channel)."""
    def put_back(report: GuardReport) -> None:
        metrics.count_tampering(report.model)
        restore_release(releases, report, actor="grading service guard")
        subject = f"[gradeline] {report.model}: release changed outside the release flow"
        body = ("put back to the audited state (a restore line is in the audit log); what was "
                "found:\n" + "\n".join(report.findings))
        tell_on_call(settings, subject, body)
    return put_back


def app_from_settings(settings: GradelineSettings, params: ServeParams,
                      review: ReviewParams | None = None) -> FastAPI:
    """The service of this home: its registry guarded by its release audit log, its prediction
    log, its keys, graphs cached under <cache>/serving, thumbnails of served photos in the
    home's thumbnails folder."""
    tracking_uri = str(settings.mlflow_tracking_uri)
    metrics = ServiceMetrics()
    releases = Releases(tracking_uri, AuditLog(settings.audit_log))
    source = ModelSource(tracking_uri, settings.cache_dir / "serving", releases=releases,
                         on_tamper=put_back_and_tell(settings, releases, metrics))
    return create_app(GradingService(source, PredictionLog(str(settings.prediction_log_uri)),
                                     metrics, params.service_config(settings.thumbnails_dir)),
                      KeyStore(settings.keys_file), review)
