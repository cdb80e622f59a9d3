"""A load generator for the grading service: clients posting card photos over HTTP, and the
experts' grades sent back for a share of them, as client services do; and experts working the
review queue.

    photos = photos_of_batch(Path("batch"))            # a factory batch: photo + experts' grades
    keys = TrafficKeys(client=client_token, expert=expert_token)  # `gradeline keys create`
    figures = Traffic(url, photos, "day1", keys).run(60)          # 60 requests, then stop
    with Traffic(url, photos, "release", keys) as traffic:        # until the block ends
        promote(...)
    work_review_queue(url, expert_token, grades_of)   # grade every item the queue hands out
    panel_works_queue(url, panel_tokens, served)      # a panel at once, grading as the factory says

Every request's correlation id (X-Request-ID) is `<prefix>-<n>`, so the prediction log rows of
one burst of traffic are easy to find; a photo's expert grade goes to /v1/feedback, with the
expert's key, under the request id of the service's answer. With a panel's keys, each expert
sends their own grade of the photo (the factory's `grader_<n>` columns) and its subgrades.
"""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from components.vision.rubric import SUBGRADE_WEIGHTS

FEEDBACK_ATTEMPTS = 5


@dataclass(frozen=True)
class Photo:
    """One photo to send and, when known, the experts' grade of its card, each panel expert's
    own grade and the subgrades."""

    path: Path
    expert_grade: int | None = None
    camera: str | None = None  # sent as X-Camera
    panel: tuple[int, ...] = ()
    subgrades: dict[str, int] = field(default_factory=dict)


def photos_of_batch(batch: Path) -> list[Photo]:
    """The photos of a factory or manifest batch with their experts' (consensus) grade, each
    expert's (`grader_<n>`), the subgrades and the camera that took them, where the manifest
    says."""
    with (batch / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    seats = sorted((c for c in (rows[0] if rows else {}) if c.startswith("grader_")
                    and c[7:].isdigit()), key=lambda c: int(c[7:]))
    return [Photo(batch / row["image_path"], int(row["grade"]), row.get("camera") or None,
                  tuple(int(row[seat]) for seat in seats),
                  {aspect: int(row[aspect]) for aspect in SUBGRADE_WEIGHTS if row.get(aspect)})
            for row in rows]


@dataclass(frozen=True)
class TrafficKeys:
    """The API keys traffic is sent with: a client's for grading, and an expert's for feedback
    (the consensus) or a panel's (one key per `grader_<n>`, each sending their own grade); no
    feedback is sent without either."""

    client: str
    expert: str | None = None
    panel: tuple[str, ...] = ()


@dataclass
class TrafficFigures:
    """What a burst of traffic saw: every answer, and every failure."""

    sent: int = 0
    feedback: int = 0
    answers: list[dict[str, object]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The figures a timeline shows."""
        answered = len(self.answers)
        grades = [int(answer["grade"]) for answer in self.answers]
        return {"requests": self.sent, "answered": answered,
                "answered_per_s": round(answered / self.seconds, 1) if self.seconds else 0,
                "failures": len(self.failures), "expert_grades": self.feedback,
                "versions": dict(Counter(f"v{answer['version']}" for answer in self.answers)),
                "mean_grade": round(sum(grades) / answered, 2) if answered else None,
                "needs_review": round(sum(bool(answer.get("needs_review"))
                                          for answer in self.answers) / answered, 3)
                if answered else None}


class Traffic:
    """`clients` threads posting `photos` in turn to the service at `url` with `keys`; each
    answered photo with an expert grade gets it sent back when `with_feedback` is set. With
    `start_when`, the clients wait until it returns True (asked every second), then send."""

    def __init__(self, url: str, photos: list[Photo], prefix: str, keys: TrafficKeys,
                 clients: int = 2,
                 with_feedback: bool = True, pause_seconds: float = 0.0,
                 start_when: Callable[[], bool] | None = None) -> None:
        if not photos:
            raise ValueError("traffic needs at least one photo")
        self.url, self.photos, self.prefix, self.keys = url.rstrip("/"), photos, prefix, keys
        self.clients, self.with_feedback, self.pause = clients, with_feedback, pause_seconds
        self.start_when = start_when
        self.figures = TrafficFigures()
        self.served: dict[str, Photo] = {}  # the photo behind each answer, by request id
        self._lock = threading.Lock()
        self._next = 0
        self._limit: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def run(self, count: int) -> TrafficFigures:
        """Send `count` requests, wait for their answers, and return the figures."""
        self._limit = count
        with self:
            for thread in self._threads:
                thread.join()
        return self.figures

    def __enter__(self) -> Traffic:
        self._started = time.perf_counter()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self.figures.seconds = round(time.perf_counter() - self._started, 2)

    def _take(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or (self._limit is not None and self._next >= self._limit):
                return None
            self._next += 1
            return self._next - 1

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while self.start_when is not None and not self._stop.is_set() \
                    and not self.start_when():
                self._stop.wait(1.0)
            while (number := self._take()) is not None:
                self._send(client, number)
                if self.pause:
                    self._stop.wait(self.pause)

    def _feedback(self, photo: Photo) -> list[tuple[str, dict[str, object]]]:
        """The grades to send back for `photo`, each with the key that sends it."""
        if not self.with_feedback:
            return []
        if self.keys.panel and len(photo.panel) >= len(self.keys.panel):
            return [(key, {"grade": grade, "subgrades": photo.subgrades or None})
                    for key, grade in zip(self.keys.panel, photo.panel, strict=False)]
        if self.keys.expert is not None and photo.expert_grade is not None:
            return [(self.keys.expert, {"grade": photo.expert_grade})]
        return []

    def _send(self, client: httpx.Client, number: int) -> None:
        photo, request_id = self.photos[number % len(self.photos)], f"{self.prefix}-{number}"
        feedback = self._feedback(photo)
        try:
            camera = {"X-Camera": photo.camera} if photo.camera else {}
            response = client.post("/v1/grade", headers={"X-Request-ID": request_id, **camera,
                                                         **_bearer(self.keys.client)},
                                   files={"file": (photo.path.name, photo.path.read_bytes())})
            if response.status_code != 200:
                raise httpx.HTTPStatusError(f"{response.status_code} {response.text}",
                                            request=response.request, response=response)
            answer = response.json()
            for key, grade in feedback:
                send_grade(client, key, str(answer["request_id"]), grade)
        except httpx.HTTPError as error:
            with self._lock:
                self.figures.sent += 1
                self.figures.failures.append(f"{request_id}: {error}")
            return
        with self._lock:
            self.figures.sent += 1
            self.figures.feedback += len(feedback)
            self.figures.answers.append(answer)
            self.served[str(answer["request_id"])] = photo


def send_grade(client: httpx.Client, key: str, request_id: str,
               grade: dict[str, object]) -> None:
    """An expert's grade (and subgrades) of an answered photo. The service logs an answer just
    after sending it, so a grade sent at once may find no request yet (404): it is retried."""
    for attempt in range(FEEDBACK_ATTEMPTS):
        response = client.post("/v1/feedback", json={"request_id": request_id, **grade},
                               headers=_bearer(key))
        if response.status_code != 404:
            break
        time.sleep(0.1 * (attempt + 1))
    response.raise_for_status()


def work_review_queue(url: str, key: str,
                      grades_of: Callable[[str], dict[str, object] | None]) -> int:
    """Grade every item the review queue hands the expert of `key` (GET /v1/review/next, then
    POST /v1/feedback, which ends the lease) until it has none; how many were graded.
    `grades_of(request_id)` is what the expert grades it ({"grade": .., "subgrades": ..}), or
    None for a photo they cannot grade (an error: the lease would hand it back forever)."""
    graded = 0
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
        while (response := client.get("/v1/review/next", headers=_bearer(key))).status_code \
                != 204:
            response.raise_for_status()
            request_id = str(response.json()["request_id"])
            grade = grades_of(request_id)
            if grade is None:
                raise RuntimeError(f"the review queue handed {request_id!r}, a photo this "
                                   "expert cannot grade")
            send_grade(client, key, request_id, grade)
            graded += 1
    return graded


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def panel_works_queue(url: str, panel: tuple[str, ...], served: dict[str, Photo]) -> list[int]:
    """Each expert of `panel` (their keys, seat by seat) works the review queue at once,
    grading each photo of `served` (by request id) as its `Photo.panel` says their seat
    did, with its subgrades; how many each graded."""
    def expert(seat: int) -> int:
        def grades_of(request_id: str) -> dict[str, object] | None:
            photo = served.get(request_id)
            return None if photo is None or seat >= len(photo.panel) else {
                "grade": photo.panel[seat], "subgrades": photo.subgrades or None}
        return work_review_queue(url, panel[seat], grades_of)

    with ThreadPoolExecutor(len(panel)) as pool:
        return list(pool.map(expert, range(len(panel))))
