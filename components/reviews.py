"""The review queue: served answers that experts should grade, and who is grading which.

    queue = ReviewQueue(log, ReviewParams())
    item = queue.lease_next("ada", now)       # the oldest item ada may grade now, or None
    queue.release(item.request_id, "ada")     # ada's grade is in (the service does this)
    queue.pending(now)                        # every item still wanting grades, and why
    queue.request(["req-7"], DRIFTED, now)    # queue answers for a reason the log cannot show
    agreement_with_panel(log.expert_panel(), "ada")   # ada next to the rest of each panel

An answer is queued when its conformal set holds more than one grade (`uncertain`), when the
other model in a release graded it otherwise (`disagreement`), when its request id falls in
the audit share (`audit`: a hash of the id, so the same answers are audited wherever this is
computed: an unbiased sample for monitoring), or when another stage asked for it (`drifted`:
monitoring queues the photos farthest from its reference). Each item wants `panel`
independent expert grades, and one more while they spread over more than one grade (up to
`max_panel`); the consensus is their median, as the prediction log's `expert_grades` gives it.
The queue is read from the prediction log and the requests beside it, so it survives restarts;
a lease (one expert, one item, for `lease_seconds`) is a row in the same database, unique per
item, so an item is never handed to two experts at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from components.params import StrictParams
from components.predlog import PredictionLog, open_database

UNCERTAIN, DISAGREEMENT, AUDIT, DRIFTED = "uncertain", "disagreement", "audit", "drifted"


class ReviewParams(StrictParams):
    """The `review:` section of params.yaml."""

    panel: int = Field(3, ge=1, description="independent expert grades each item wants")
    max_panel: int = Field(5, ge=1, description="grades an item wants at most, however they "
                           "spread")
    audit_share: float = Field(0.05, ge=0, le=1, description="share of all answers reviewed "
                               "whatever the model said: an unbiased sample")
    lease_seconds: float = Field(600, gt=0, description="how long an expert holds an item")
    window_days: float = Field(14, gt=0, description="answers this recent are queued")
    expert_window_days: float = Field(7, gt=0, description="an expert's drift is judged on "
                                      "their grades this recent")
    expert_min_items: int = Field(20, ge=1, description="photos shared with other experts "
                                  "before an expert's bias is judged")
    expert_max_bias: float = Field(0.5, gt=0, description="mean difference from the rest of "
                                   "each panel (grades) beyond which an expert has drifted")


@dataclass(frozen=True)
class ReviewItem:
    """One queued answer: why it is queued, which experts graded it and how many it wants."""

    request_id: str
    time: datetime
    reasons: tuple[str, ...]
    graders: tuple[str, ...]
    wanted: int


def in_audit_share(request_id: str, share: float) -> bool:
    """Whether `request_id` falls in the audit share: the same answer whoever asks."""
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) < share * 16 ** 8


def wanted_grades(grades: list[int], params: ReviewParams) -> int:
    """Expert grades an item wants: the panel, plus one while they spread over more than one
    grade, up to `max_panel`."""
    spread = len(grades) >= params.panel and max(grades) - min(grades) > 1
    return min(params.max_panel, max(params.panel, len(grades) + 1 if spread else 0))


def _leases(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "review_leases", metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),  # one expert per item
        sa.Column("expert", sa.String(128), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )


def _requests(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "review_requests", metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    )


class ReviewQueue:
    """The queue over a prediction log, with its leases and requested reviews in the same
    database."""

    def __init__(self, log: PredictionLog, params: ReviewParams) -> None:
        self.log, self.params = log, params
        self._engine = open_database(log.uri)
        metadata = sa.MetaData()
        self._leases, self._requests = _leases(metadata), _requests(metadata)
        metadata.create_all(self._engine)

    def request(self, request_ids: list[str], reason: str, now: datetime) -> int:
        """Queue these answers for `reason` (once each); how many were new."""
        column = self._requests.c
        with self._engine.begin() as connection:
            known = set(connection.execute(sa.select(column.request_id).where(
                column.reason == reason, column.request_id.in_(request_ids))).scalars())
            fresh = [{"request_id": request_id, "reason": reason, "time": now}
                     for request_id in dict.fromkeys(request_ids) if request_id not in known]
            if fresh:
                connection.execute(self._requests.insert(), fresh)
        return len(fresh)

    def _requested(self) -> dict[str, set[str]]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(self._requests.c.request_id,
                                                self._requests.c.reason)).all()
        requested: dict[str, set[str]] = {}
        for request_id, reason in rows:
            requested.setdefault(request_id, set()).add(reason)
        return requested

    def pending(self, now: datetime) -> list[ReviewItem]:
        """Every queued answer of the window that still wants expert grades, oldest first."""
        rows = self.log.window(since=now - timedelta(days=self.params.window_days), until=now)
        if rows.empty:
            return []
        graded = rows[rows["grade"].notna() & rows["error"].isna()]
        answers = graded[graded["answered"]].drop_duplicates("request_id")
        others = graded[~graded["answered"]].groupby("request_id")["grade"].agg(set)
        panel = self.log.expert_panel().groupby("request_id")
        experts = {request_id: frame for request_id, frame in panel}
        requested = self._requested()
        items = []
        for row in answers.itertuples():
            reasons = self._reasons(row, others.get(row.request_id, set())) + tuple(
                sorted(requested.get(row.request_id, ())))
            if not reasons:
                continue
            given = experts.get(row.request_id)
            grades = [] if given is None else given["grade"].astype(int).tolist()
            wanted = wanted_grades(grades, self.params)
            if len(grades) < wanted:
                graders = () if given is None else tuple(given["grader"])
                items.append(ReviewItem(row.request_id, row.time, reasons, graders, wanted))
        return items

    def _reasons(self, row: object, other_grades: set) -> tuple[str, ...]:
        reasons = []
        if pd.notna(row.grade_set_low) and row.grade_set_high > row.grade_set_low:
            reasons.append(UNCERTAIN)
        if other_grades - {row.grade}:
            reasons.append(DISAGREEMENT)
        if in_audit_share(row.request_id, self.params.audit_share):
            reasons.append(AUDIT)
        return tuple(reasons)

    def waiting_for(self, expert: str, now: datetime) -> list[ReviewItem]:
        """The pending items `expert` has not graded yet, oldest first."""
        return [item for item in self.pending(now) if expert not in item.graders]

    def lease_next(self, expert: str, now: datetime) -> ReviewItem | None:
        """The item `expert` holds, or else the oldest one they have not graded that nobody
        holds, leased to them for `lease_seconds`; None when nothing waits for them."""
        mine = self.waiting_for(expert, now)
        until = now + timedelta(seconds=self.params.lease_seconds)
        leases = self._leases.c
        for item in mine:
            with self._engine.begin() as connection:
                connection.execute(self._leases.delete().where(leases.until <= now))
                holder = connection.execute(sa.select(leases.expert).where(
                    leases.request_id == item.request_id)).scalar_one_or_none()
                if holder == expert:
                    return item
                if holder is not None:
                    continue
                try:
                    connection.execute(self._leases.insert().values(
                        request_id=item.request_id, expert=expert, until=until))
                except sa.exc.IntegrityError:  # another expert took it just now
                    continue
            return item
        return None

    def holds(self, request_id: str, expert: str, now: datetime) -> bool:
        """Whether `expert` holds a live lease on `request_id`."""
        leases = self._leases.c
        with self._engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).where(
                leases.request_id == request_id, leases.expert == expert,
                leases.until > now)).scalar_one() > 0

    def release(self, request_id: str, expert: str) -> None:
        """Let go of `expert`'s lease on `request_id` (their grade is in)."""
        leases = self._leases.c
        with self._engine.begin() as connection:
            connection.execute(self._leases.delete().where(
                leases.request_id == request_id, leases.expert == expert))


def _differences(panel: pd.DataFrame, expert: str) -> pd.DataFrame:
    """`expert`'s grades (and when they gave them) on photos others graded too, with the
    difference from the others' consensus (their median, rounded half up, as a panel's) and
    from their mean (`offset`: unrounded, so one kind peer moves it by a fraction only)."""
    theirs = panel[panel["grader"] == expert].set_index("request_id")
    others = panel[(panel["grader"] != expert) & panel["request_id"].isin(theirs.index)]
    grades = others.groupby("request_id")["grade"]
    consensus = np.floor(grades.median().astype(float) + 0.5)
    shared = theirs.loc[consensus.index]
    own = shared["grade"].astype(float)
    return shared.assign(difference=own - consensus, offset=own - grades.mean().astype(float))


def agreement_with_panel(panel: pd.DataFrame, expert: str) -> dict[str, object]:
    """How `expert` grades next to the rest of each panel (`PredictionLog.expert_panel()`): on
    the photos they graded that others graded too, the share of grades equal to the others'
    median (rounded half up), within one of it, and their mean difference from the others'
    mean grade (a bias)."""
    shared = _differences(panel, expert)
    difference, compared = shared["difference"].to_numpy(float), len(shared)
    return {"expert": expert, "graded": int((panel["grader"] == expert).sum()),
            "compared": compared,
            "exact": round(float(np.mean(difference == 0)), 3) if compared else None,
            "within_one": round(float(np.mean(np.abs(difference) <= 1)), 3) if compared else None,
            "bias": round(float(shared["offset"].mean()), 3) if compared else None}


@dataclass(frozen=True)
class ExpertDrift:
    """One expert's recent bias against the rest of their panels, and whether it drifted."""

    expert: str
    compared: int
    bias: float | None
    drifted: bool

    def line(self) -> str:
        if self.bias is None:
            return f"{self.expert}: no photo shared with other experts recently"
        return (f"{self.expert}: {self.bias:+.2f} grades against the rest of the panel on "
                f"{self.compared} photos")


def expert_drift(panel: pd.DataFrame, since: datetime, params: ReviewParams) -> list[ExpertDrift]:
    """Each expert's bias on the photos they graded since `since` (`panel` with its `time`):
    drifted once `expert_min_items` are compared and the bias passes `expert_max_bias` either
    way. The experts are the platform's truth, and an expert half a grade kinder or harsher
    than their peers moves every consensus they join."""
    recent = panel[pd.to_datetime(panel["time"], utc=True) >= since]
    found = []
    for expert in sorted(recent["grader"].unique()):
        theirs = _differences(panel, expert)
        theirs = theirs[pd.to_datetime(theirs["time"], utc=True) >= since]
        compared = len(theirs)
        bias = round(float(theirs["offset"].mean()), 3) if compared else None
        found.append(ExpertDrift(expert, compared, bias, compared >= params.expert_min_items
                                 and abs(bias or 0.0) > params.expert_max_bias))
    return found


def expert_alert(standing: ExpertDrift, action: str,
                 params: ReviewParams) -> tuple[str, str] | None:
    """On-call's subject and body for an incident verdict's `action` on an expert (an alert
    or a recovery; None for anything else)."""
    if action == "alert":
        return (f"[gradeline] expert drift: {standing.expert}",
                f"{standing.line()} over the last {params.expert_window_days:g} days, beyond "
                f"{params.expert_max_bias:g} either way (review.expert_max_bias). Their grades "
                "move every consensus they join and the training batches made from them: "
                "compare their recent items with the panel's, then recalibrate them or take "
                "them off the queue (gradeline keys revoke).")
    if action == "recovered":
        return f"[gradeline] expert recovered: {standing.expert}", standing.line()
    return None
