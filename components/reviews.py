"""The review queue: served answers that experts should grade, and who is grading which.

    queue = ReviewQueue(log, ReviewParams())
    item = queue.lease_next("ada", now)       # the oldest item ada may grade now, or None
    queue.release(item.request_id, "ada")     # ada's grade is in (the service does this)
    queue.pending(now)                        # every item still wanting grades, and why
    queue.request(["req-7"], DRIFTED, now)    # queue answers for a reason the log cannot show
    queue.add_gold("req-9", 7, "head grader", now)     # a photo whose grade is known
    queue.settled(now)                        # items with a consensus (review_batch.py exports)

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

Gold items are served photos whose grade the head grader knows. Each expert is handed one
before other items whenever gold is under `gold_share` of what they graded, and it looks like
any audited item to them. How each expert grades, against the panel and the gold, is
`experts.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from components.params import StrictParams
from components.predlog import PredictionLog, create_tables, open_database

UNCERTAIN, DISAGREEMENT, AUDIT, DRIFTED = "uncertain", "disagreement", "audit", "drifted"
GOLD = "gold"  # an item of known grade that measures the expert (they see it as an audit)


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
                                      "their grades this recent, and only experts who graded "
                                      "this recently are asked for a spread item's next grade")
    expert_min_items: int = Field(20, ge=1, description="photos shared with other experts "
                                  "before an expert's bias is judged")
    expert_max_bias: float = Field(0.5, gt=0, description="mean difference from the rest of "
                                   "each panel, or from the gold items' known grades (grades), "
                                   "beyond which an expert has drifted")
    gold_share: float = Field(0.05, ge=0, le=1, description="share of each expert's grades "
                              "given to gold items (known grades)")
    expert_min_gold: int = Field(8, ge=1, description="gold items graded before an expert's "
                                 "bias against the known grades is judged")
    export_min_items: int = Field(50, ge=1, description="items with a consensus that make a "
                                  "labeled batch worth exporting (components/review_batch.py)")


@dataclass(frozen=True)
class ReviewItem:
    """One queued answer: why it is queued, which experts graded it and how many it wants."""

    request_id: str
    time: datetime
    reasons: tuple[str, ...]
    graders: tuple[str, ...]
    wanted: int


@dataclass(frozen=True)
class SettledItem:
    """A queued answer with its consensus: the item, the prediction log's answered row, and
    its experts' latest grades (grader, grade, subgrades, time) in the order given."""

    item: ReviewItem
    answer: Any  # its row of PredictionLog.window, a named tuple
    panel: pd.DataFrame

    @property
    def consensus(self) -> int:
        """The median of the experts' grades, rounded half up (`PredictionLog.expert_grades`)."""
        return int(np.floor(self.panel["grade"].astype(float).median() + 0.5))


def in_audit_share(request_id: str, share: float) -> bool:
    """Whether `request_id` falls in the audit share: the same answer whoever asks."""
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) < share * 16 ** 8


def wanted_grades(grades: list[int], params: ReviewParams, experts: int) -> int:
    """Expert grades an item wants: the panel, plus one while they spread over more than one
    grade, up to `max_panel` and while one of the `experts` grading now (in the expert window)
    has not graded it (with three experts, a fourth grade would never come: it settles on
    three; nor would one from an expert who has left)."""
    spread = len(grades) >= params.panel and max(grades) - min(grades) > 1
    more = len(grades) + 1 if spread and len(grades) < experts else 0
    return min(params.max_panel, max(params.panel, more))


def _leases(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "review_leases", metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),  # one expert per item
        sa.Column("expert", sa.String(128), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )


def _gold(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "review_gold", metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
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
        self._gold = _gold(metadata)
        create_tables(self._engine, metadata)

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

    def _queued(self, now: datetime, panel: pd.DataFrame) -> Iterator[ReviewItem]:
        """Every queued answer of the window, oldest first, with why it is queued, who of
        `panel` (`PredictionLog.expert_panel()`) graded it so far and how many grades it
        wants. Each expert's grades are grouped once, not per item: `next` runs this for
        every photo an expert is handed."""
        rows = self.log.window(since=now - timedelta(days=self.params.window_days), until=now,
                               embeddings=False)
        if rows.empty:
            return
        graded = rows[rows["grade"].notna() & rows["error"].isna()]
        answers = graded[graded["answered"]].drop_duplicates("request_id")
        others = graded[~graded["answered"]].groupby("request_id")["grade"].agg(set)
        graders: dict[str, tuple[str, ...]] = {}
        grades: dict[str, list[int]] = {}
        for request_id, grader, grade in zip(panel["request_id"], panel["grader"],
                                             panel["grade"], strict=True):
            graders[request_id] = (*graders.get(request_id, ()), grader)
            grades.setdefault(request_id, []).append(int(grade))
        recent = panel["time"] >= now - timedelta(days=self.params.expert_window_days)
        requested, experts = self._requested(), panel.loc[recent, "grader"].nunique()
        for row in answers.itertuples(index=False):
            reasons = self._reasons(row, others.get(row.request_id, set())) + tuple(
                sorted(requested.get(row.request_id, ())))
            if reasons:
                wanted = wanted_grades(grades.get(row.request_id, []), self.params, experts)
                yield ReviewItem(row.request_id, row.time, reasons,
                                 graders.get(row.request_id, ()), wanted)

    def pending(self, now: datetime) -> list[ReviewItem]:
        """Every queued answer of the window that still wants expert grades, oldest first."""
        return [item for item in self._queued(now, self.log.expert_panel())
                if len(item.graders) < item.wanted]

    def settled(self, now: datetime) -> list[SettledItem]:
        """Every queued answer of the window whose panel is complete (a consensus), oldest
        first, with its answered row; gold items are left out (their grade was known before
        any expert's)."""
        gold, panel = self.gold(), self.log.expert_panel()
        items = [item for item in self._queued(now, panel)
                 if len(item.graders) >= item.wanted and item.request_id not in gold]
        if not items:
            return []
        wanted = {item.request_id for item in items}
        rows = self.log.window(since=now - timedelta(days=self.params.window_days), until=now,
                               embeddings=False)
        answers = {row.request_id: row for row in rows[
            rows["answered"] & rows["request_id"].isin(wanted)].itertuples(index=False)}
        experts = dict(list(panel[panel["request_id"].isin(wanted)].groupby("request_id")))
        return [SettledItem(item, answers[item.request_id], experts[item.request_id])
                for item in items]

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

    def add_gold(self, request_id: str, grade: int, by: str, now: datetime) -> None:
        """Make a served photo a gold item of known `grade` (`by`: the head grader); setting
        it again corrects the grade."""
        if not 1 <= grade <= 10:
            raise ValueError(f"gold grade {grade} of request {request_id} is not in 1..10")
        if not self.log.answers_to(request_id):
            raise KeyError(f"no answer to request {request_id!r} is logged: only a served "
                           "photo can be a gold item")
        with self._engine.begin() as connection:
            connection.execute(self._gold.delete().where(self._gold.c.request_id == request_id))
            connection.execute(self._gold.insert().values(request_id=request_id, grade=grade,
                                                          set_by=by, time=now))

    def _gold_rows(self) -> list[sa.Row]:
        column = self._gold.c
        with self._engine.connect() as connection:
            return connection.execute(sa.select(column.request_id, column.grade, column.time)
                                      .order_by(column.time, column.request_id)).all()

    def gold(self) -> dict[str, int]:
        """The known grade of every gold item, by request id."""
        return {row.request_id: row.grade for row in self._gold_rows()}

    def _gold_due(self, expert: str) -> list[ReviewItem]:
        """The gold items `expert` has not graded, oldest first, when gold is under
        `gold_share` of what they graded counting the next item; else none."""
        rows = self._gold_rows()
        if not rows:
            return []
        panel = self.log.expert_panel()
        theirs = set(panel.loc[panel["grader"] == expert, "request_id"])
        graded_gold = sum(row.request_id in theirs for row in rows)
        if graded_gold >= self.params.gold_share * (len(theirs) + 1):
            return []
        graders = panel.groupby("request_id")["grader"].agg(tuple)
        return [ReviewItem(row.request_id, row.time, (GOLD,), graders.get(row.request_id, ()),
                           len(graders.get(row.request_id, ())) + 1)
                for row in rows if row.request_id not in theirs]

    def lease_next(self, expert: str, now: datetime,
                   waiting: list[ReviewItem] | None = None) -> ReviewItem | None:
        """The item `expert` holds, or else a gold item when one is due (`gold_share`), or
        else the oldest item they have not graded that nobody holds, leased to them for
        `lease_seconds`; None when nothing waits for them. `waiting` is `waiting_for(expert,
        now)` when the caller read it already (reading the queue is most of the time taken)."""
        mine = self._gold_due(expert) + (self.waiting_for(expert, now) if waiting is None
                                         else waiting)
        until = now + timedelta(seconds=self.params.lease_seconds)
        leases = self._leases.c
        with self._engine.begin() as connection:
            connection.execute(self._leases.delete().where(leases.until <= now))
            held = set(connection.execute(sa.select(leases.request_id).where(
                leases.expert == expert)).scalars())
        mine = [item for item in mine if item.request_id in held] + mine
        for item in mine:
            with self._engine.begin() as connection:
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
