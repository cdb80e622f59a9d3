"""The per-window discrepancy report on a real SQLite prediction log: the champion's answers
that experts graded, model against consensus by camera, grade, defect class and set size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.monitor.discrepancy import discrepancies, discrepancy_html
from components.predlog import PredictionLog
from tests.unit.test_predlog import _record


@pytest.fixture
def log(tmp_path: Path) -> PredictionLog:
    """Studio photos graded right; phone photos with a crease graded two above the experts'
    consensus; a shadow answer and an answer nobody graded, neither counted."""
    log = PredictionLog(f"sqlite:///{tmp_path}/p.db")
    log.write([
        *(_record(f"studio-{i}", i, camera="studio", grade=8, defects=["corner_wear"])
          for i in range(4)),
        *(_record(f"phone-{i}", 10 + i, camera="phone", grade=6, grade_set_low=6,
                  grade_set_high=6, defects=["crease", "corner_wear"]) for i in range(3)),
        _record("unnamed", 20, grade=5, camera=None, defects=None),
        _record("phone-0", 30, role="challenger", answered=False, grade=4, camera="phone"),
        _record("ungraded", 40, camera="studio"),
    ])
    for i in range(4):
        log.record_expert_grade(f"studio-{i}", 8, "ada", _record().time)
    for i in range(3):
        log.record_expert_grade(f"phone-{i}", 4, "ada", _record().time)
    log.record_expert_grade("unnamed", 5, "ada", _record().time)
    return log


def test_the_tables_show_where_the_model_and_the_experts_part(log: PredictionLog) -> None:
    found = discrepancies(log.window(), log.expert_grades())

    tables = {name: table.reset_index().to_dict("records") for name, table in
              found.tables.items()}
    assert found.graded == 8
    assert tables["camera"] == [
        {"camera": "not named", "graded": 1, "exact": 1.0, "within_one": 1.0, "bias": 0.0},
        {"camera": "phone", "graded": 3, "exact": 0.0, "within_one": 0.0, "bias": 2.0},
        {"camera": "studio", "graded": 4, "exact": 1.0, "within_one": 1.0, "bias": 0.0}]
    assert [(row["defect_class"], row["graded"], row["bias"])
            for row in tables["defect_class"]] == [
        ("corner_wear", 7, pytest.approx(6 / 7, abs=1e-3)), ("crease", 3, 2.0), ("none", 1, 0.0)]
    assert [(row["expert_grade"], row["graded"]) for row in tables["expert_grade"]] == [
        (4, 3), (5, 1), (8, 4)]
    assert [(row["set_size"], row["graded"]) for row in tables["set_size"]] == [(1, 3), (3, 5)]
    assert found.worst(min_graded=3) == "camera phone: bias +2.00 on 3 photos (exact 0%)"
    assert found.worst(min_graded=9) is None


def test_the_page_marks_the_groups_past_half_a_grade(log: PredictionLog, tmp_path: Path) -> None:
    found = discrepancies(log.window(), log.expert_grades())

    page = discrepancy_html(found, tmp_path / "out" / "discrepancy.html", "v3 <window>").read_text()

    assert "<h1>v3 &lt;window&gt;</h1>" in page
    # phone, crease, corner wear (+0.86), experts' grade 4, set size 1: all the phone photos
    assert page.count("<tr class=off>") == 5
    assert "<h2>By conformal set size</h2>" in page


def test_a_window_without_expert_grades_gives_empty_tables(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path}/p.db")
    log.write([_record("alone")])

    found = discrepancies(log.window(), log.expert_grades())

    assert found.graded == 0 and all(table.empty for table in found.tables.values())
    assert found.worst() is None
    assert "no graded answer" in discrepancy_html(found, tmp_path / "d.html", "empty").read_text()


def test_the_page_follows_each_expert_over_time_in_a_plot_and_a_table(
        log: PredictionLog, tmp_path: Path) -> None:
    history = pd.DataFrame({
        "expert": ["ada", "ada", "bob"], "period": pd.to_datetime(
            ["2026-12-01", "2026-12-02", "2026-12-02"], utc=True),
        "compared": [4, 4, 4], "exact": [1.0, 0.25, 1.0], "bias": [0.0, 0.75, 0.0],
        "gold_compared": [0, 1, 1], "gold_bias": [None, 1.0, 0.0]})
    found = discrepancies(log.window(), log.expert_grades())

    page = discrepancy_html(found, tmp_path / "discrepancy.html", "v3", history,
                            max_bias=0.5).read_text()

    assert "<h2>Each expert over time</h2>" in page and '<img src="experts.png"' in page
    assert (tmp_path / "experts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<tr class=off><td>ada</td><td>2026-12-02</td><td>4</td><td>25%</td><td>+0.75</td>" \
        "<td>1</td><td>+1.00</td></tr>" in page
    assert "<tr><td>bob</td><td>2026-12-02</td>" in page
