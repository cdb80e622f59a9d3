"""The grading service without HTTP: decode, route, batch, answer, and record every prediction.

    service = GradingService(ModelSource(tracking_uri, cache), PredictionLog(uri),
                             ServiceMetrics(), ServiceConfig())
    await service.start()                              # loads the champion, starts the batchers
    answer = await service.grade(upload_bytes, correlation_id="client-abc")

Every request gets the service's own id (random, so no client can choose which model answers it);
the id a client sends is kept beside it as a correlation id. Routing follows the release stage
the registry gives the challenger: with a canary share, the requests whose id falls in that share
are answered by the challenger and the champion scores them off the response path;
with no share the challenger is in shadow and scores every request off the response path. Either
way both answers land in the prediction log, where the promote flow compares them. A challenger
that fails on a request never fails the client: the champion answers, and the error is counted
against the challenger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from components.predlog import PredictionLog, PredictionRecord, SpooledWriter
from components.reviews import in_audit_share
from components.serving.batcher import MicroBatcher, Overloaded
from components.serving.metrics import ServiceMetrics
from components.serving.preparing import PreparedUpload, PreparePool
from components.serving.responses import grade_response
from components.serving.routing import answers_with_challenger
from components.serving.source import ModelSource, ServedModels
from components.serving.uploads import UploadLimits, UploadRejected
from components.thumbnails import review_overlay, save_review_copy
from components.vision.models import (
    Defect,
    GradeAnswer,
    GraderInput,
    OnnxDetector,
    OnnxGrader,
)

logger = logging.getLogger(__name__)
CHAMPION, CHALLENGER, DETECTOR = "champion", "challenger", "detector"
DRAIN_SECONDS = 30.0  # how long a replaced model's batcher keeps serving requests in flight


class NotReady(RuntimeError):
    """No champion is loaded yet, or a request took longer than its time limit: the service
    cannot answer it now."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and timings of one service process (params.yaml `serve:`)."""

    upload_limits: UploadLimits = UploadLimits()
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 64  # photos admitted at once; also the bound of each model's batch queue
    graph_lanes: int = 1  # batches of one model run at once, each on one core
    prepare_workers: int = 0  # processes that decode and prepare photos (0: a thread)
    max_files_per_request: int = 32
    refresh_seconds: float = 5.0
    request_timeout_s: float = 30.0  # one photo's whole answer; past it the client gets 503
    thumbnails: Path | None = None  # where a small copy of each served photo goes (monitoring)
    audit_share: float = 0.0  # answers experts review whatever the model said (review.audit_share)


@dataclass(frozen=True)
class _Trace:
    """What ties every record of one request together: the service's id, the client's."""

    request_id: str
    correlation_id: str | None
    properties: dict[str, float]
    camera: str | None = None
    boxes: list[dict[str, object]] | None = None  # the detector's, logged with the answer


@dataclass(frozen=True)
class _Scored:
    """One model's answer (or error) for one request, and how long it took."""

    model: OnnxGrader
    role: str  # CHAMPION or CHALLENGER, as the registry's aliases named it for this request
    answer: GradeAnswer | None
    seconds: float
    error: str | None = None


class GradingService:
    """Answers grading requests with the registry's champion (and challenger in release)."""

    def __init__(self, source: ModelSource, log: PredictionLog, metrics: ServiceMetrics,
                 config: ServiceConfig) -> None:
        self.source, self.log, self.metrics, self.config = source, log, metrics, config
        self.models = ServedModels()
        self._graders: dict[tuple[str, int], MicroBatcher[GraderInput, GradeAnswer]] = {}
        self._detectors: dict[tuple[str, int], MicroBatcher[np.ndarray, list[Defect]]] = {}
        self._unwanted_since: dict[tuple[str, int], float] = {}
        self._in_flight = 0
        self._request_seconds = 0.0
        self._background: set[asyncio.Task] = set()
        self._log_writer = SpooledWriter(log)
        self._photos = PreparePool(config.prepare_workers, config.upload_limits,
                                   config.thumbnails)
        self.draining = False
        self._refresher: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the photo workers, load what the aliases name now and keep following them."""
        await self._photos.start()
        await self.refresh()
        self._refresher = asyncio.create_task(self._follow_aliases())

    async def stop(self) -> None:
        """Stop following aliases, finish off-path work and the batchers."""
        if self._refresher:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        while self._background:  # off-path scoring may start prediction log writes
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await asyncio.to_thread(self._write_log, [])  # a last try for records still waiting
        for batcher in [*self._graders.values(), *self._detectors.values()]:
            await batcher.stop()
        await self._photos.stop()

    async def refresh(self) -> ServedModels:
        """Re-read the aliases (in a thread: it downloads and loads graphs) and swap in."""
        models = await asyncio.to_thread(self.source.refresh)
        await self._sync_batchers(models)
        self.models = models
        loaded = models.loaded()
        for role, name in ((CHAMPION, self.source.grader_name),
                           (CHALLENGER, self.source.grader_name),
                           (DETECTOR, self.source.detector_name)):
            if role in loaded:
                self.metrics.set_loaded(name, role, int(loaded[role]["version"]),
                                        loaded[role]["data_version"])
            else:
                self.metrics.clear_loaded(name, role)
        self.metrics.set_canary_share(self.source.grader_name, models.canary_share)
        return models

    async def _follow_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the registry may be briefly away; keep serving what is loaded
                logger.exception("could not refresh the served models")

    async def _sync_batchers(self, models: ServedModels) -> None:
        """One micro-batcher per loaded model. The batcher of a model no longer served is
        stopped DRAIN_SECONDS later: requests that started with it still finish on it."""
        wanted_graders = {(m.model, m.version): m for m in (models.champion, models.challenger)
                          if m is not None}
        wanted_detectors = {(m.model, m.version): m for m in (models.detector,) if m is not None}
        now = time.monotonic()
        for batchers, wanted, run in ((self._graders, wanted_graders, "grade"),
                                      (self._detectors, wanted_detectors, "detect")):
            for key in set(batchers) - set(wanted):
                unwanted_since = self._unwanted_since.setdefault(key, now)
                if now - unwanted_since >= DRAIN_SECONDS:
                    del self._unwanted_since[key]
                    await batchers.pop(key).stop()
            for key, model in wanted.items():
                self._unwanted_since.pop(key, None)
                if key not in batchers:
                    batcher = MicroBatcher(getattr(model, run), self.config.max_batch,
                                           self.config.max_wait_ms, self.config.max_queue,
                                           self.config.graph_lanes)
                    await batcher.start()
                    batchers[key] = batcher

    def drain(self) -> None:
        """Say not ready from now on (a load balancer stops sending new requests) while
        requests keep being answered: the first step of a graceful shutdown."""
        self.draining = True

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready when a champion grader is loaded and the service is not draining; with what
        is loaded and what failed."""
        ready = self.models.champion is not None and not self.draining
        return ready, {"draining": self.draining, "loaded": self.models.loaded(),
                       "canary_share": self.models.canary_share,
                       "problems": dict(self.source.problems),
                       "prediction_log": self._log_writer.state()}

    async def grade(self, data: bytes, correlation_id: str | None = None,
                    request_id: str | None = None, camera: str | None = None
                    ) -> dict[str, object]:
        """The answer for one uploaded photo; UploadRejected, Overloaded or NotReady when it
        cannot be given. `request_id` is the service's (a new random one when None), never
        the client's: the client's id is `correlation_id`. `camera` is what the client calls
        the camera that took the photo, logged for the discrepancy report.

        At most `max_queue` photos are inside the service at once, counted from their arrival:
        one more is refused before any work is spent on it, since decoding and rectifying cost
        more than the model's run, and work done for a photo that is then refused at the batcher
        only slows the ones being answered."""
        if self._in_flight >= self.config.max_queue:
            raise Overloaded(self._in_flight, max(1.0, self._request_seconds))
        self._in_flight += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                answer = await self._grade(data, _Trace(request_id or uuid.uuid4().hex,
                                                        correlation_id, {}, camera), started)
        except TimeoutError:
            raise NotReady(f"the answer took longer than {self.config.request_timeout_s:g} s",
                           max(1.0, self._request_seconds)) from None
        finally:
            self._in_flight -= 1
        # A moving average of answered requests' time: the Retry-After a refused client gets.
        self._request_seconds += 0.1 * (time.perf_counter() - started - self._request_seconds)
        return answer

    async def _grade(self, data: bytes, client: _Trace, started: float) -> dict[str, object]:
        models, request_id = self.models, client.request_id
        if models.champion is None:
            raise NotReady("no champion model is loaded yet", self.config.refresh_seconds)
        challenger_answers = (models.challenger is not None and models.canary_share > 0
                              and answers_with_challenger(request_id, models.canary_share))
        roles = {CHAMPION: models.champion, CHALLENGER: models.challenger}
        first, other = (CHALLENGER, CHAMPION) if challenger_answers else (CHAMPION, CHALLENGER)
        upload = await self._photos.prepare(data, roles[first].preparation, request_id)
        photo, prepared = upload.photo, upload.prepared
        scored = await self._score(roles[first], first, prepared)
        failed_challenger = None
        if scored.error is not None and first == CHALLENGER:
            failed_challenger = scored  # the champion answers the client instead
            prepared = await self._prepared_for(models.champion, upload)
            scored = await self._score(models.champion, CHAMPION, prepared)
        trace = replace(client, properties=upload.properties)
        if scored.error is not None:
            self._record([(scored, True)], trace)
            raise RuntimeError(scored.error)
        defects = await self._detect(models.detector, photo)
        if defects is not None:
            trace = replace(trace, boxes=[defect.as_box() for defect in defects])
        self._record([(scored, True)] + ([(failed_challenger, False)] if failed_challenger
                                         else []), trace)
        self.metrics.count_request(scored.model.model, scored.model.version, scored.role, 200)
        if roles[other] is not None and failed_challenger is None:
            self._off_path(roles[other], other, upload, scored, trace)
        answer = grade_response(request_id, client.correlation_id, scored.role, scored.model,
                                scored.answer, prepared.centering, defects, models.detector)
        if self._for_review(answer, request_id, release=roles[other] is not None):
            await asyncio.to_thread(save_review_copy, self.config.thumbnails, request_id, photo,
                                    review_overlay(None if prepared.centering is None
                                                   else prepared.centering.as_dict(),
                                                   answer["graded_defects"]))
        answer["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    def _for_review(self, answer: dict[str, object], request_id: str, release: bool) -> bool:
        """Whether the review queue will want this photo (components/reviews.py): its set is
        uncertain, a release may disagree on it, or it is in the audit share."""
        return self.config.thumbnails is not None and (
            bool(answer["needs_review"]) or release
            or in_audit_share(request_id, self.config.audit_share))

    async def grade_many(self, uploads: list[bytes], correlation_id: str | None = None,
                         camera: str | None = None) -> list[dict[str, object]]:
        """Answers for several photos of one request (ids `<request id>-<i>`, all with the
        client's `correlation_id` and `camera`); a photo that cannot be read gets its own error
        entry and does not fail the others."""
        if len(uploads) > self.config.max_files_per_request:
            raise UploadRejected(413, f"{len(uploads)} files in one request, over the limit of "
                                      f"{self.config.max_files_per_request}")
        request_id = uuid.uuid4().hex
        results = await asyncio.gather(*(self.grade(data, correlation_id, f"{request_id}-{i}",
                                                    camera) for i, data in enumerate(uploads)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, (Overloaded, NotReady)):
                raise result  # the whole request is retried later
        return [result if not isinstance(result, BaseException) else
                {"request_id": f"{request_id}-{i}", "correlation_id": correlation_id,
                 "error": getattr(result, "message", str(result)),
                 "status": getattr(result, "status", 500)}
                for i, result in enumerate(results)]

    async def record_expert_grade(self, request_id: str, grade: int, grader: str,
                                  subgrades: dict[str, int] | None = None) -> None:
        """An expert's grade of a served photo (and subgrades): canary analyses judge kappa on
        these, and monitoring its performance drift. KeyError for an unknown request id."""
        await asyncio.to_thread(self.log.record_expert_grade, request_id, grade, grader,
                                datetime.now(UTC), subgrades)

    @staticmethod
    async def _prepared_for(model: OnnxGrader, upload: PreparedUpload) -> GraderInput:
        """The upload as `model` reads it: the same input when it is fed like the model that
        answered (one preparation for both sides of a release), else prepared again."""
        if upload.preparation == model.preparation:
            return upload.prepared
        return await asyncio.to_thread(model.prepare, upload.photo)

    async def _score(self, model: OnnxGrader, role: str, prepared: GraderInput) -> _Scored:
        """One model's answer through its batcher; Overloaded propagates, other errors are
        returned so that the caller decides who answers."""
        batcher = self._graders[(model.model, model.version)]
        self.metrics.set_queue_depth(batcher.queue_depth)
        started = time.perf_counter()
        try:
            answer = await batcher.submit(prepared)
        except Overloaded:
            raise
        except Exception as error:
            return _Scored(model, role, None, time.perf_counter() - started,
                           f"{type(error).__name__}: {error}")
        return _Scored(model, role, answer, time.perf_counter() - started)

    async def _detect(self, detector: OnnxDetector | None,
                      photo: np.ndarray) -> list[Defect] | None:
        if detector is None:
            return None
        return await self._detectors[(detector.model, detector.version)].submit(photo)

    def _off_path(self, model: OnnxGrader, role: str, upload: PreparedUpload, answered: _Scored,
                  trace: _Trace) -> None:
        """Score the request with the other model after the client has its answer."""
        async def shadow() -> None:
            try:
                prepared = await self._prepared_for(model, upload)
                scored = await self._score(model, role, prepared)
            except Overloaded:
                return  # off-path work yields to clients: a skipped pair, not an error
            self._record([(scored, False)], trace)
            if scored.answer is not None:
                champion, challenger = ((answered, scored) if role == CHALLENGER
                                        else (scored, answered))
                self.metrics.observe_shadow(model.model, champion.model.version,
                                            challenger.model.version,
                                            champion.answer.grade == challenger.answer.grade)

        task = asyncio.create_task(shadow())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record(self, scored: list[tuple[_Scored, bool]], trace: _Trace) -> None:
        """Metrics now, prediction log rows in a background thread."""
        now = datetime.now(UTC)
        records = []
        for item, answered in scored:
            self.metrics.observe_prediction(item.model.model, item.model.version, item.role,
                                            item.seconds, item.error is not None)
            answer = item.answer
            records.append(PredictionRecord(
                request_id=trace.request_id, correlation_id=trace.correlation_id,
                time=now, model=item.model.model,
                version=item.model.version, role=item.role, answered=answered,
                data_version=item.model.data_version,
                grade=answer.grade if answer else None,
                grade_set_low=answer.grade_set[0] if answer else None,
                grade_set_high=answer.grade_set[-1] if answer else None,
                needs_review=answer.needs_review if answer else None,
                probabilities=answer.probabilities if answer else None,
                subgrades=answer.subgrades if answer else None,
                latency_ms=round(item.seconds * 1000, 2), error=item.error,
                properties=trace.properties,
                embedding=answer.embedding if answer else None, camera=trace.camera,
                defects=sorted({d.defect_class for d in answer.defects}) if answer else None,
                boxes=trace.boxes if answered else None))
        task = asyncio.create_task(asyncio.to_thread(self._write_log, records))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _write_log(self, records: list[PredictionRecord]) -> None:
        """One write through the spool; a failure is logged and counted, never raised."""
        written = self._log_writer.write(records)
        state = self._log_writer.state()
        self.metrics.set_log_pending(int(state["pending"]))
        if not written:
            self.metrics.count_log_failure()
            logger.error("prediction log write failed (%s records waiting): %s",
                         state["pending"], state["last_error"])
