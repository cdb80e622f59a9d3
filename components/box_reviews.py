"""Reviewers' corrected defect boxes of served photos, in the prediction log's database: what
the detector should have found, against which monitoring measures its precision and recall per
class (`monitor/boxes.py`).

    reviews = BoxReviews(log)
    reviews.record("req-7", [{"class": "crease", "box": [10, 20, 80, 30]}], "ada", now)
    reviews.frame()        # request_id, reviewer, time, boxes: every review, oldest first

A review is the reviewer's complete set of defects on the photo (an empty list: none), in the
uploaded photo's pixels, as the service's answer gives the detector's boxes. The photo's
request must be logged; a box must have four numbers with x1 < x2 and y1 < y2, and a class.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from components.predlog import PredictionLog, create_tables, open_database


class BoxReviewError(ValueError):
    """A review the log cannot take: a malformed box or a time without a zone."""


def _table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "box_reviews", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("boxes", sa.Text, nullable=False),  # JSON [{"class", "box": [x1, y1, x2, y2]}]
    )


def checked_boxes(boxes: list[dict[str, object]]) -> list[dict[str, object]]:
    """The boxes as stored: class and four floats each; BoxReviewError naming a bad one."""
    kept = []
    for index, box in enumerate(boxes):
        corners = box.get("box")
        if not box.get("class") or not isinstance(corners, list | tuple) or len(corners) != 4:
            raise BoxReviewError(f"box {index}: needs a class and four numbers [x1, y1, x2, y2]")
        x1, y1, x2, y2 = (float(v) for v in corners)
        if not (x1 < x2 and y1 < y2):
            raise BoxReviewError(f"box {index}: [{x1}, {y1}, {x2}, {y2}] is empty (x1 < x2 and "
                                 "y1 < y2 are needed)")
        kept.append({"class": str(box["class"]), "box": [x1, y1, x2, y2]})
    return kept


class BoxReviews:
    """The `box_reviews` table beside the prediction log (created when missing)."""

    def __init__(self, log: PredictionLog) -> None:
        self.log = log
        self._engine = open_database(log.uri)
        metadata = sa.MetaData()
        self._table = _table(metadata)
        create_tables(self._engine, metadata)

    def record(self, request_id: str, boxes: list[dict[str, object]], reviewer: str,
               time: datetime) -> None:
        """Keep `reviewer`'s boxes of the photo `request_id` sent. Nothing is written when a
        box is malformed (BoxReviewError) or the request is not logged (KeyError)."""
        kept = checked_boxes(boxes)
        if time.tzinfo is None:
            raise BoxReviewError(f"review of {request_id}: time {time} has no time zone")
        if not self.log.answers_to(request_id):
            raise KeyError(f"no answered prediction with request id {request_id!r} is logged")
        with self._engine.begin() as connection:
            connection.execute(self._table.insert(), [{
                "request_id": request_id, "reviewer": reviewer, "time": time,
                "boxes": json.dumps(kept)}])

    def frame(self) -> pd.DataFrame:
        """request_id, reviewer, time (UTC) and boxes (decoded) of every review, oldest first."""
        column = self._table.c
        query = sa.select(column.request_id, column.reviewer, column.time,
                          column.boxes).order_by(column.time, column.id)
        with self._engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(),
                                 columns=["request_id", "reviewer", "time", "boxes"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame["boxes"] = frame["boxes"].map(json.loads)
        return frame
