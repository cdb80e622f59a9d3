"""The prediction log: a record comes back as written, windows filter by time, model, role and
version, concurrent writers lose nothing, and champion and challenger compare on known rows."""

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from components.predlog import COLUMNS, PredictionLog, PredictionRecord, SpooledWriter
from components.release.comparison import RoleComparison, compare_roles, latency_quantile
from components.vision.properties import PROPERTY_NAMES

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PROPERTIES = {name: float(i) + 0.5 for i, name in enumerate(PROPERTY_NAMES)}


def _record(request_id: str = "r-1", minute: int = 0, **changes: object) -> PredictionRecord:
    base = PredictionRecord(
        request_id=request_id, time=START + timedelta(minutes=minute), model="card-grader",
        version=3, role="champion", answered=True, data_version="d-7", grade=8,
        grade_set_low=7, grade_set_high=9, needs_review=False,
        probabilities=[0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.15, 0.6, 0.15, 0.05],
        subgrades={"centering": 9, "corners": 8, "edges": 8, "surface": 7},
        latency_ms=12.5, error=None, properties=PROPERTIES, embedding=[0.25, -1.5, 3.0],
        camera="studio", defects=["corner_wear", "stain"])
    return replace(base, **changes)


@pytest.fixture
def log(tmp_path: Path) -> PredictionLog:
    return PredictionLog(f"sqlite:///{tmp_path}/p.db")


def test_a_record_with_everything_set_comes_back_as_written(log: PredictionLog) -> None:
    written = _record()
    log.write([written])

    frame = log.window()

    assert list(frame.columns) == list(COLUMNS)
    row = frame.iloc[0]
    assert row["time"] == written.time and str(frame["time"].dt.tz) == "UTC"
    for name in ("request_id", "model", "version", "role", "answered", "data_version", "grade",
                 "grade_set_low", "grade_set_high", "needs_review", "probabilities",
                 "subgrades", "latency_ms", "error", "embedding"):
        assert row[name] == getattr(written, name), name
    assert {name: row[name] for name in PROPERTY_NAMES} == PROPERTIES


def test_a_failed_prediction_keeps_its_missing_fields_missing(log: PredictionLog) -> None:
    log.write([_record(grade=None, grade_set_low=None, grade_set_high=None, needs_review=None,
                       probabilities=None, subgrades=None, embedding=None,
                       error="RuntimeError: session lost")])

    row = log.window().iloc[0]

    assert row["grade"] is pd.NA and row["needs_review"] is pd.NA
    assert row["probabilities"] is None and row["embedding"] is None
    assert row["error"] == "RuntimeError: session lost"


def test_times_in_other_zones_are_stored_in_utc(log: PredictionLog) -> None:
    paris = timezone(timedelta(hours=1))
    log.write([_record(time=datetime(2025, 3, 1, 13, 0, tzinfo=paris))])
    assert log.window()["time"].iloc[0] == START


def test_the_window_filters_by_time_model_role_and_version(log: PredictionLog) -> None:
    log.write([_record("a", 0), _record("b", 10), _record("c", 20),
               _record("b", 10, role="shadow", version=4, answered=False),
               _record("d", 10, model="defect-detector")])

    since, until = START + timedelta(minutes=5), START + timedelta(minutes=20)
    assert list(log.window(since=since)["request_id"]) == ["b", "b", "d", "c"]
    assert list(log.window(since=since, until=until, model="card-grader")["request_id"]) == [
        "b", "b"]
    assert list(log.window(roles=["shadow"])["version"]) == [4]
    assert list(log.window(roles=["champion"], version=3)["request_id"]) == ["a", "b", "d", "c"]
    assert log.count(since=since, model="card-grader") == 3
    assert log.count(model="nothing") == 0 and log.window(model="nothing").empty


def test_a_naive_time_is_refused(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        _record(time=datetime(2025, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="since .* no time zone"):
        log.window(since=datetime(2025, 3, 1))


def test_a_record_without_every_property_is_refused() -> None:
    with pytest.raises(ValueError, match="properties lack noise"):
        _record(properties={k: v for k, v in PROPERTIES.items() if k != "noise"})


def test_four_threads_writing_at_once_lose_nothing(log: PredictionLog) -> None:
    def writer(thread: int) -> None:
        for batch in range(25):
            log.write([_record(f"t{thread}-{batch}-{i}", batch) for i in range(4)])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert log.count() == 4 * 25 * 4
    assert log.window()["request_id"].is_unique


def test_champion_and_challenger_compare_on_known_rows(log: PredictionLog) -> None:
    champion_grades, challenger_grades = [5, 6, 7, 8], [5, 6, 7, 10]
    latencies = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    records = []
    for i in range(8):
        canary = i % 2 == 0  # the challenger answered the client; the champion scored off path
        records.append(_record(f"r{i}", i, grade=champion_grades[i % 4], answered=not canary,
                               latency_ms=latencies[i]))
        failed = i >= 4
        records.append(_record(f"r{i}", i, role="challenger" if canary else "shadow", version=4,
                               answered=canary, grade=None if failed else challenger_grades[i],
                               error="RuntimeError: boom" if failed else None,
                               latency_ms=100.0 + i))
    records.append(_record("old", -60, role="shadow", version=4, answered=False))
    records.append(_record("other", 1, version=2))
    log.write(records)

    comparison = compare_roles(log, "card-grader", champion_version=3, challenger_version=4,
                               since=START)

    assert comparison.pairs == 4
    assert (comparison.champion_requests, comparison.challenger_requests) == (8, 8)
    assert (comparison.champion_answered, comparison.challenger_answered) == (4, 4)
    assert comparison.champion_error_rate == 0.0 and comparison.challenger_error_rate == 0.5
    assert comparison.agreement_exact == 0.75 and comparison.agreement_within_one == 0.75
    assert comparison.mean_abs_grade_difference == 0.5
    # Only the answers clients got are timed, 4 a side: too few for a p99 or a p90, so the
    # median is compared, and named.
    assert comparison.latency_quantile == 0.5
    assert comparison.champion_latency_ms == pytest.approx(np.median(latencies[1::2]))
    assert comparison.challenger_latency_ms == pytest.approx(np.median(100 + np.arange(0, 8, 2)))
    assert comparison.as_dict()["pairs"] == 4


@pytest.mark.parametrize(("requests", "quantile"), [(1, 0.5), (19, 0.5), (20, 0.9), (99, 0.9),
                                                     (100, 0.99), (5000, 0.99)])
def test_the_latency_quantile_compared_is_one_the_step_has_requests_for(requests: int,
                                                                        quantile: float) -> None:
    assert latency_quantile(requests) == quantile


def test_an_empty_window_compares_without_nan(log: PredictionLog) -> None:
    log.write([_record("r0")])

    comparison = compare_roles(log, "card-grader", 3, 4, since=START)

    assert comparison == RoleComparison(
        pairs=0, champion_requests=1, challenger_requests=0, champion_answered=1,
        challenger_answered=0, champion_error_rate=0.0,
        challenger_error_rate=0.0, champion_latency_ms=12.5, challenger_latency_ms=None,
        agreement_exact=None, agreement_within_one=None, mean_abs_grade_difference=None,
        latency_quantile=0.5)


def test_expert_grades_give_each_side_its_kappa(log: PredictionLog) -> None:
    experts = [3, 5, 7, 9]
    records = []
    for i, expert in enumerate(experts):
        records.append(_record(f"r{i}", i, grade=expert))  # the champion grades like the experts
        records.append(_record(f"r{i}", i, role="challenger", version=4, answered=False,
                               grade=11 - expert))  # the challenger the other way round
    log.write(records)
    for i, expert in enumerate(experts):
        log.record_expert_grade(f"r{i}", 1, "ada", START)
        log.record_expert_grade(f"r{i}", expert, "ada", START + timedelta(minutes=5))

    comparison = compare_roles(log, "card-grader", 3, 4, since=START)

    assert comparison.expert_items == 4  # the later grade of each photo counts
    assert comparison.champion_kappa == 1.0 and comparison.challenger_kappa < 0
    with pytest.raises(KeyError, match="no prediction with request id 'unknown'"):
        log.record_expert_grade("unknown", 5, "ada", START)
    with pytest.raises(ValueError, match="not in 1..10"):
        log.record_expert_grade("r0", 11, "ada", START)


def test_the_spool_keeps_at_most_its_bound_while_the_log_is_down_and_counts_the_rest(
        log: PredictionLog, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = SpooledWriter(log, max_pending=3)
    write = log.write
    monkeypatch.setattr(log, "write", lambda records: (_ for _ in ()).throw(OSError("disk full")))

    for number in range(5):
        assert writer.write([_record(f"r-{number}")]) is False
    assert writer.state() == {"healthy": False, "pending": 3, "failed_writes": 5, "dropped": 2,
                              "last_error": "OSError: disk full"}

    monkeypatch.setattr(log, "write", write)
    assert writer.write([]) is True and writer.state()["healthy"]
    assert sorted(log.window()["request_id"]) == ["r-2", "r-3", "r-4"]  # the newest kept


def test_embeddings_are_stored_as_float16_bytes_and_older_json_rows_still_read(
        log: PredictionLog) -> None:
    log.write([_record("new"), _record("old", minute=1)])
    with log._engine.begin() as connection:  # a row as an older version wrote it
        connection.execute(sa.text("UPDATE predictions SET embedding_f16 = NULL, "
                                   "embedding = '[0.5, 1.5]' WHERE request_id = 'old'"))
        stored = connection.execute(sa.text("SELECT embedding_f16, embedding FROM predictions "
                                            "WHERE request_id = 'new'")).one()

    assert len(stored[0]) == 2 * 3 and stored[1] is None  # 2 bytes a value, no JSON text
    assert log.window()["embedding"].tolist() == [[0.25, -1.5, 3.0], [0.5, 1.5]]


def test_pruning_deletes_records_and_expert_grades_before_the_cutoff_only(
        log: PredictionLog) -> None:
    log.write([_record("old", minute=0), _record("new", minute=60)])
    log.record_expert_grade("old", 7, "ada", START)
    log.record_expert_grade("new", 8, "ada", START + timedelta(minutes=60))
    cut = START + timedelta(minutes=30)

    assert log.prune(cut, dry_run=True) == 1 and log.count() == 2
    assert log.prune(cut) == 1

    assert log.window()["request_id"].tolist() == ["new"]
    assert log.expert_grades()["request_id"].tolist() == ["new"]


def test_a_window_without_embeddings_leaves_only_that_column_out(log: PredictionLog) -> None:
    log.write([_record(), _record("r-2", 1, embedding=None)])

    full, light = log.window(), log.window(embeddings=False)

    assert list(light.columns) == list(full.columns)
    assert light["embedding"].isna().all() and full["embedding"][0] == [0.25, -1.5, 3.0]
    pd.testing.assert_frame_equal(light.drop(columns="embedding"),
                                  full.drop(columns="embedding"))
