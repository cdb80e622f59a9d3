"""The batch suite (Great Expectations, no server): a clean batch passes and gets Data Docs,
too many quarantined items or a label distribution far from the reference fail it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from components.cards import synthesize_batch
from components.ingest import (
    TASKS,
    AcceptedIndex,
    ImageLimits,
    SuiteLimits,
    check_batch,
    read_batch,
)
from components.ingest.suite import build_data_docs, label_threshold, validate_batch
from tests.batches import read_rows, write_rows

GRADE = TASKS["grade"]


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite") / "batch"
    synthesize_batch(out, n=30, seed=21, camera="studio", workers=1)
    return out


def _validate(batch: Path, gx_root: Path, reference: pd.Series | None = None):
    checked = check_batch(read_batch(batch, needs_boxes=False), GRADE, AcceptedIndex(),
                          ImageLimits(), max_bits=20, workers=1)
    return validate_batch(gx_root, "cards", GRADE, checked, SuiteLimits(), ImageLimits(),
                          reference)


def test_the_label_bound_shrinks_with_the_batch_but_not_below_the_floor() -> None:
    limits = SuiteLimits()

    small, large, huge = (label_threshold(n, 10, limits) for n in (30, 100, 300_000))

    assert small > large > limits.label_kl_floor == huge


def test_a_small_reference_widens_the_label_bound() -> None:
    limits = SuiteLimits()

    exact, sampled = label_threshold(60, 10, limits), label_threshold(60, 10, limits, 40)

    # A 40-label reference is noisy itself: 60 vs 40 behaves like 24 labels against truth.
    assert sampled == pytest.approx(label_threshold(24, 10, limits)) and sampled > exact


def test_a_clean_batch_passes_and_its_data_docs_are_rendered(factory: Path, tmp_path: Path) -> None:
    reference = pd.Series([int(row["grade"]) for row in read_rows(factory)] * 10)

    result = _validate(factory, tmp_path / "gx", reference)

    assert result.success, result.failures
    assert result.label_divergence is not None and result.label_divergence < 0.1
    index = Path(build_data_docs(tmp_path / "gx", result))
    assert index.is_file() and "cards.manifest" in index.read_text()
    suites = {p.stem for p in (tmp_path / "gx" / "gx" / "expectations").rglob("*.json")}
    assert {"items", "manifest", "images"} <= suites


def test_too_many_quarantined_items_fail_the_batch(factory: Path, tmp_path: Path) -> None:
    batch = Path(shutil.copytree(factory, tmp_path / "batch"))
    rows = read_rows(batch)
    write_rows(batch, [{**row, "grade": "11"} if i < 10 else row for i, row in enumerate(rows)])

    result = _validate(batch, tmp_path / "gx")

    assert not result.success
    assert any("quarantined" in failure for failure in result.failures)


def test_labels_far_from_the_reference_fail_the_batch(factory: Path, tmp_path: Path) -> None:
    batch = Path(shutil.copytree(factory, tmp_path / "batch"))
    write_rows(batch, [{**row, "grade": "3"} for row in read_rows(batch)])
    reference = pd.Series([int(row["grade"]) for row in read_rows(factory)] * 10)

    result = _validate(batch, tmp_path / "gx", reference)

    assert [f for f in result.failures if "kl_divergence" in f], result.failures
    assert result.label_divergence is not None and result.label_divergence > 1


def test_too_many_duplicates_fail_the_batch_naming_the_settings(factory: Path,
                                                                tmp_path: Path) -> None:
    batch = Path(shutil.copytree(factory, tmp_path / "batch"))
    rows = read_rows(batch)
    copies = [dict(row, item_id=f"copy-{i}", image_path=f"images/copy-{i}.jpg")
              for i, row in enumerate(rows[:6])]
    for row, copy in zip(rows, copies, strict=False):
        shutil.copyfile(batch / row["image_path"], batch / copy["image_path"])
    write_rows(batch, [*rows, *copies])

    result = _validate(batch, tmp_path / "gx")

    failure = next(f for f in result.failures if "reason" in f)
    assert "ingest.near_duplicate_similarity" in failure
    assert "ingest.suite.max_duplicate_share" in failure
