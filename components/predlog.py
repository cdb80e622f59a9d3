"""The prediction log: one row per model answer (champion, challenger or shadow), with the image
properties drift monitoring reads. Serving writes it; monitoring and the release comparison
(`components/release/comparison.py`) read it.

    log = PredictionLog(settings.prediction_log_uri)
    log.write([PredictionRecord(request_id="r-1", time=datetime.now(UTC), ...)])
    frame = log.window(since=datetime.now(UTC) - timedelta(hours=1), roles=["champion"])

SQLAlchemy Core on any URI: SQLite (WAL, the embedded default) or PostgreSQL. Times are stored
in UTC and come back as tz-aware UTC; lists and dicts are stored as JSON text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from components.vision.properties import PROPERTY_NAMES

ROLES = ("champion", "challenger", "shadow")
_JSON_FIELDS = ("probabilities", "subgrades", "defects", "boxes")
# Embeddings are float16 bytes (a 320-value embedding: 640 bytes, not 6 kB of JSON text); rows
# written before kept theirs as JSON in `embedding`, which is still read.
_EMBEDDING_BYTES = "embedding_f16"
_SCHEMA_LOCK = 0x6772_6164_6C6E  # the advisory lock every process takes to create the schema
_DTYPES = {"version": "int64", "answered": "bool", "grade": "Int64", "grade_set_low": "Int64",
           "grade_set_high": "Int64", "needs_review": "boolean", "latency_ms": "float64"}


@dataclass(frozen=True)
class PredictionRecord:
    """One answer of one model version to one request; `answered` when it went to the client,
    `error` the failure when the model gave no grade."""

    request_id: str
    time: datetime
    model: str
    version: int
    role: str
    answered: bool
    data_version: str | None
    grade: int | None
    grade_set_low: int | None
    grade_set_high: int | None
    needs_review: bool | None
    probabilities: list[float] | None
    subgrades: dict[str, int] | None
    latency_ms: float
    error: str | None
    properties: dict[str, float]
    embedding: list[float] | None = None
    correlation_id: str | None = None  # the id the client sent (X-Request-ID), kept for tracing
    camera: str | None = None  # the camera the client named (X-Camera), for discrepancy reports
    defects: list[str] | None = None  # the defect classes the answer named
    # the detector's defects served beside the grade: [{"class", "box", "confidence"}]
    boxes: list[dict[str, object]] | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"prediction {self.request_id}: role {self.role!r} is not one of "
                             f"{', '.join(ROLES)}")
        if self.time.tzinfo is None:
            raise ValueError(f"prediction {self.request_id}: time {self.time} has no time zone")
        missing = set(PROPERTY_NAMES) - set(self.properties)
        if missing:
            raise ValueError(f"prediction {self.request_id}: properties lack "
                             f"{', '.join(sorted(missing))}")


# The frame `window` returns: the record's fields, with `properties` spread over one column each.
COLUMNS: tuple[str, ...] = tuple(
    name for field in fields(PredictionRecord)
    for name in (PROPERTY_NAMES if field.name == "properties" else (field.name,))
)


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "predictions", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("answered", sa.Boolean, nullable=False),
        sa.Column("data_version", sa.String(128)),
        sa.Column("grade", sa.Integer),
        sa.Column("grade_set_low", sa.Integer),
        sa.Column("grade_set_high", sa.Integer),
        sa.Column("needs_review", sa.Boolean),
        sa.Column("probabilities", sa.Text),
        sa.Column("subgrades", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
        *(sa.Column(name, sa.Float) for name in PROPERTY_NAMES),
        sa.Column("embedding", sa.Text),
        sa.Column("correlation_id", sa.String(128)),
        sa.Column("camera", sa.String(64)),
        sa.Column("defects", sa.Text),
        sa.Column("boxes", sa.Text),
        sa.Column(_EMBEDDING_BYTES, sa.LargeBinary),
        sa.Index("ix_predictions_model_time", "model", "time"),
    )


def _expert_table(metadata: sa.MetaData) -> sa.Table:
    """Experts' grades of served photos, as they arrive (POST /v1/feedback), by request id."""
    return sa.Table(
        "expert_grades", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.Column("grader", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subgrades", sa.Text),  # JSON {aspect: 1..10}, when the expert gave them
    )


def _enable_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (monitoring) run while the service writes; the busy timeout makes a
    second process wait for the lock instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def open_database(uri: str) -> sa.Engine:
    """An engine on `uri`; for SQLite, its folder made and WAL with a busy timeout set."""
    url = sa.engine.make_url(uri)
    engine = sa.create_engine(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect", _enable_wal)
    return engine


class PredictionLog:
    """The `predictions` table at `uri` (created when missing): write records, read windows."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engine = open_database(uri)
        metadata = sa.MetaData()
        self._table, self._experts = _table(metadata), _expert_table(metadata)
        create_tables(self._engine, metadata)
        # One writer at a time per process: SQLite has a single write lock, and queueing here
        # is cheaper than its busy-wait.
        self._write_lock = threading.Lock()

    def write(self, records: Sequence[PredictionRecord]) -> None:
        """Append `records` in one transaction; safe to call from several threads."""
        if not records:
            return
        rows = [_row(record) for record in records]
        with self._write_lock, self._engine.begin() as connection:
            connection.execute(self._table.insert(), rows)

    def window(self, since: datetime | None = None, until: datetime | None = None,
               model: str | None = None, roles: Sequence[str] | None = None,
               version: int | None = None, embeddings: bool = True) -> pd.DataFrame:
        """Records with since <= time < until (either open), oldest first, as a frame of
        `COLUMNS`: JSON decoded, time tz-aware UTC, missing grades as <NA>. Without
        `embeddings` that column is None throughout: reading and decoding it is most of the
        time a window takes, and only drift detection needs it."""
        names = (*COLUMNS, _EMBEDDING_BYTES) if embeddings else tuple(
            name for name in COLUMNS if name != "embedding")
        query = (sa.select(*(self._table.c[name] for name in names))
                 .where(*self._filters(since, until, model, roles, version))
                 .order_by(self._table.c.time, self._table.c.id))
        with self._engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(), columns=list(names))
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        for name in _JSON_FIELDS:
            frame[name] = frame[name].map(json.loads, na_action="ignore").astype(object)
        frame["embedding"] = [_embedding(packed, text) for packed, text in zip(
            frame.pop(_EMBEDDING_BYTES), frame["embedding"], strict=True)] if embeddings else None
        return frame[list(COLUMNS)].astype(_DTYPES)

    def record_expert_grade(self, request_id: str, grade: int, grader: str, time: datetime,
                            subgrades: dict[str, int] | None = None) -> None:
        """An expert's grade (1..10) of the photo a request sent, with their subgrades when
        given; the request must be logged."""
        for name, value in {"grade": grade, **(subgrades or {})}.items():
            if not 1 <= value <= 10:
                raise ValueError(f"expert {name} {value} of request {request_id} is not in "
                                 "1..10")
        query = sa.select(sa.func.count()).where(self._table.c.request_id == request_id)
        with self._write_lock, self._engine.begin() as connection:
            if not connection.execute(query).scalar_one():
                raise KeyError(f"no prediction with request id {request_id!r} is logged")
            connection.execute(self._experts.insert(), [{
                "request_id": request_id, "grade": grade, "grader": grader,
                "time": _utc(time, "time"),
                "subgrades": json.dumps(subgrades) if subgrades else None}])

    def expert_grade_by(self, request_id: str, grader: str) -> int | None:
        """The latest grade `grader` gave the photo of `request_id`, or None."""
        column = self._experts.c
        query = (sa.select(column.grade)
                 .where(column.request_id == request_id, column.grader == grader)
                 .order_by(column.time.desc(), column.id.desc()).limit(1))
        with self._engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    def answers_to(self, request_id: str) -> list[dict[str, object]]:
        """What each model answered to one request (the one that answered the client first):
        model, version, role, grade, its conformal set's range and subgrades."""
        column = self._table.c
        query = (sa.select(column.model, column.version, column.role, column.answered,
                           column.grade, column.grade_set_low, column.grade_set_high,
                           column.subgrades)
                 .where(column.request_id == request_id, column.error.is_(None))
                 .order_by(column.answered.desc(), column.id))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [{"model": row.model, "version": row.version, "role": row.role,
                 "answered": row.answered, "grade": row.grade,
                 "grade_set": [row.grade_set_low, row.grade_set_high],
                 "subgrades": json.loads(row.subgrades) if row.subgrades else None}
                for row in rows]

    def expert_panel(self) -> pd.DataFrame:
        """request_id, grader, grade, subgrades (a dict, or None) and time of every expert's
        grade of a photo: each expert's latest counts (an expert may correct their own, never
        another's)."""
        column = self._experts.c
        query = (sa.select(column.request_id, column.grader, column.grade, column.subgrades,
                           column.time).order_by(column.time, column.id))
        with self._engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(),
                                 columns=["request_id", "grader", "grade", "subgrades", "time"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame["subgrades"] = frame["subgrades"].map(json.loads, na_action="ignore")
        return frame.drop_duplicates(["request_id", "grader"], keep="last")

    def expert_grades(self) -> pd.DataFrame:
        """request_id and grade of every photo experts graded: the median of its experts'
        latest grades (rounded half up), as a panel's consensus is."""
        median = self.expert_panel().groupby("request_id", sort=False)["grade"].median()
        return pd.DataFrame({"request_id": median.index,
                             "grade": np.floor(median.to_numpy(float) + 0.5).astype(int)})

    def prune(self, before: datetime, dry_run: bool = False) -> int:
        """Delete the records and expert grades older than `before` (retention); how many
        records went (or would go, with `dry_run`)."""
        records = self._table.c.time < _utc(before, "before")
        with self._write_lock, self._engine.begin() as connection:
            count = int(connection.execute(sa.select(sa.func.count()).select_from(self._table)
                                           .where(records)).scalar_one())
            if not dry_run:
                connection.execute(self._table.delete().where(records))
                connection.execute(self._experts.delete().where(
                    self._experts.c.time < _utc(before, "before")))
        return count

    def count(self, since: datetime | None = None, until: datetime | None = None,
              model: str | None = None, roles: Sequence[str] | None = None,
              version: int | None = None) -> int:
        """How many records `window` with the same filters would return."""
        query = (sa.select(sa.func.count()).select_from(self._table)
                 .where(*self._filters(since, until, model, roles, version)))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def _filters(self, since: datetime | None, until: datetime | None, model: str | None,
                 roles: Sequence[str] | None, version: int | None) -> list[sa.ColumnElement]:
        column = self._table.c
        filters: list[sa.ColumnElement] = []
        if since is not None:
            filters.append(column.time >= _utc(since, "since"))
        if until is not None:
            filters.append(column.time < _utc(until, "until"))
        if model is not None:
            filters.append(column.model == model)
        if roles is not None:
            filters.append(column.role.in_(list(roles)))
        if version is not None:
            filters.append(column.version == version)
        return filters


def _embedding(packed: bytes | None, text: str | None) -> list[float] | None:
    """An embedding from its float16 bytes, or from the JSON text of an older row."""
    if packed is not None:
        return np.frombuffer(packed, np.float16).astype(float).tolist()
    return None if text is None or text is pd.NA else json.loads(text)


def create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create `metadata`'s missing tables and add the columns a database written by an older
    version lacks (nullable ones only, so an existing home keeps its history), one process at a
    time: replicas that start together on an empty PostgreSQL otherwise race on the same CREATE
    TABLE and one fails (a unique violation in pg_class). SQLite serialises DDL by itself."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _SCHEMA_LOCK})
        metadata.create_all(connection)
        for table in metadata.sorted_tables:
            present = {c["name"] for c in sa.inspect(connection).get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=engine.dialect)
                    connection.execute(sa.text(f"ALTER TABLE {table.name} "
                                               f"ADD COLUMN {column.name} {kind}"))


def _utc(moment: datetime, what: str) -> datetime:
    """`moment` in UTC; a naive time is refused, since SQLite would compare it as UTC silently."""
    if moment.tzinfo is None:
        raise ValueError(f"{what} = {moment} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC)


def _row(record: PredictionRecord) -> dict[str, Any]:
    row = {name: value for name, value in asdict(record).items() if name != "properties"}
    row["time"] = _utc(record.time, "time")
    for name in _JSON_FIELDS:
        row[name] = None if row[name] is None else json.dumps(row[name])
    embedding = row.pop("embedding")
    row[_EMBEDDING_BYTES] = None if embedding is None else \
        np.asarray(embedding, np.float16).tobytes()
    row.update({name: float(record.properties[name]) for name in PROPERTY_NAMES})
    return row


class SpooledWriter:
    """Writes records to a PredictionLog without losing them when a write fails (a locked
    database, a full disk): the failure is counted and its records are kept, up to
    `max_pending`, and written with the next write that succeeds. Past that, the oldest are
    dropped and counted, so memory stays bounded while the log is down."""

    def __init__(self, log: PredictionLog, max_pending: int = 10_000) -> None:
        self.log, self.max_pending = log, max_pending
        self.failures = self.dropped = 0
        self.last_error: str | None = None
        self._pending: list[PredictionRecord] = []
        self._lock = threading.Lock()

    def write(self, records: Sequence[PredictionRecord]) -> bool:
        """Write `records` and any kept from failed writes; False when this write failed."""
        with self._lock:
            batch, self._pending = [*self._pending, *records], []
        try:
            self.log.write(batch)
        except Exception as error:  # any database error: keep the records, say so
            with self._lock:
                kept = [*batch, *self._pending]
                self.dropped += max(0, len(kept) - self.max_pending)
                self._pending = kept[-self.max_pending:]
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
            return False
        return True

    def state(self) -> dict[str, object]:
        """What /readyz shows: healthy when nothing waits to be written."""
        with self._lock:
            return {"healthy": not self._pending, "pending": len(self._pending),
                    "failed_writes": self.failures, "dropped": self.dropped,
                    "last_error": self.last_error}
