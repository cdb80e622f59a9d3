"""Prometheus metrics of the grading service, in a registry of their own so that several apps
(and tests) in one process never collide.

    metrics = ServiceMetrics()
    metrics.observe_prediction("card-grader", 3, "champion", seconds=0.012, error=False)
    body, content_type = metrics.exposition()     # what GET /metrics answers

Latency, request and error counts carry model, version and role, so a dashboard can set the
challenger beside the champion; shadow agreement is the running share of same-grade pairs.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# From a cached small image on a GPU (5 ms) to a 12-megapixel upload on a busy CPU (5 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
_ROLE_LABELS = ("model", "version", "role")
_PAIR_LABELS = ("model", "champion_version", "challenger_version")


class ServiceMetrics:
    """The service's metrics and the one place that updates them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram("gradeline_request_seconds",
                                  "Time to answer one prediction, per model version and role",
                                  _ROLE_LABELS, buckets=LATENCY_BUCKETS, registry=self.registry)
        self._requests = Counter("gradeline_requests_total", "Requests answered, by HTTP status",
                                 (*_ROLE_LABELS, "status"), registry=self.registry)
        self._errors = Counter("gradeline_prediction_errors_total",
                               "Predictions that failed inside the model", _ROLE_LABELS,
                               registry=self.registry)
        self._agreement = Gauge("gradeline_shadow_agreement",
                                "Share of shadow pairs where challenger and champion gave the "
                                "same grade, since the service started", _PAIR_LABELS,
                                registry=self.registry)
        self._canary_share = Gauge("gradeline_canary_share",
                                   "Share of requests the challenger answers", ("model",),
                                   registry=self.registry)
        self._queue_depth = Gauge("gradeline_queue_depth", "Requests waiting for a batch",
                                  registry=self.registry)
        self._model_info = Gauge("gradeline_model_info", "1 for each model version loaded",
                                 ("model", "alias", "version", "data_version"),
                                 registry=self.registry)
        self._rejected = Counter("gradeline_rejected_uploads_total",
                                 "Uploads refused before grading, by reason", ("reason",),
                                 registry=self.registry)
        self._denied = Counter("gradeline_denied_requests_total",
                               "Requests refused for their API key: 401 (missing, unknown, "
                               "revoked) or 403 (role)", ("status",), registry=self.registry)
        self._tampering = Counter("gradeline_release_tampering_total",
                                  "Release states (aliases, canary share, stages) found changed "
                                  "outside the release flow and put back", ("model",),
                                  registry=self.registry)
        self._log_failures = Counter("gradeline_prediction_log_failures_total",
                                     "Prediction log writes that failed (their records are "
                                     "kept and written with the next write)",
                                     registry=self.registry)
        self._log_pending = Gauge("gradeline_prediction_log_pending",
                                  "Prediction records waiting for the log to accept them",
                                  registry=self.registry)
        self._shadow_pairs: dict[tuple[str, str, str], list[int]] = {}
        self._loaded: dict[tuple[str, str], tuple[str, str, str, str]] = {}

    def observe_prediction(self, model: str, version: int, role: str, seconds: float,
                           error: bool) -> None:
        """One prediction's latency, and its failure when the model raised."""
        labels = (model, str(version), role)
        self._latency.labels(*labels).observe(seconds)
        if error:
            self._errors.labels(*labels).inc()

    def count_request(self, model: str, version: int, role: str, status: int | str) -> None:
        """One request answered with HTTP `status`."""
        self._requests.labels(model, str(version), role, str(status)).inc()

    def observe_shadow(self, model: str, champion_version: int, challenger_version: int,
                       same_grade: bool) -> None:
        """One request graded by both; updates the running share of same grades."""
        labels = (model, str(champion_version), str(challenger_version))
        counts = self._shadow_pairs.setdefault(labels, [0, 0])
        counts[0] += int(same_grade)
        counts[1] += 1
        self._agreement.labels(*labels).set(counts[0] / counts[1])

    def set_canary_share(self, model: str, share: float) -> None:
        self._canary_share.labels(model).set(share)

    def set_queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)

    def set_loaded(self, model: str, alias: str, version: int, data_version: str | None) -> None:
        """Mark the version now loaded under `alias`, removing the one it replaced."""
        labels = (model, alias, str(version), data_version or "")
        self.clear_loaded(model, alias)
        self._loaded[(model, alias)] = labels
        self._model_info.labels(*labels).set(1)

    def clear_loaded(self, model: str, alias: str) -> None:
        """Forget the version loaded under `alias`, when the alias is gone (no challenger)."""
        stale = self._loaded.pop((model, alias), None)
        if stale is not None:
            self._model_info.remove(*stale)

    def count_rejected_upload(self, reason: str) -> None:
        """One upload refused for `reason` (e.g. too_large, not_an_image)."""
        self._rejected.labels(str(reason)).inc()

    def count_denied(self, status: int) -> None:
        """One request refused for its key, with the status it got (401 or 403)."""
        self._denied.labels(str(status)).inc()

    def count_tampering(self, model: str) -> None:
        """One release state of `model` found changed by hand (and served as audited)."""
        self._tampering.labels(model).inc()

    def count_log_failure(self) -> None:
        """One failed prediction log write."""
        self._log_failures.inc()

    def set_log_pending(self, pending: int) -> None:
        """How many prediction records wait for the log (0 when it is healthy)."""
        self._log_pending.set(pending)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus text format, and the content type to send them with."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
