"""The window a monitoring run judges: the last hours by default, explicit times with their
offset, and a clear refusal of windows that make no sense."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components.monitor.window import MonitorError, window_bounds


def test_the_default_window_is_the_last_hours_before_now() -> None:
    before = datetime.now(UTC)
    start, end = window_bounds(24.0)

    assert before <= end <= datetime.now(UTC)
    assert end - start == timedelta(hours=24)


def test_explicit_times_keep_their_offset_and_the_hours_count_back_from_until() -> None:
    start, end = window_bounds(24.0, "2026-11-23T04:00:00+01:00", "2026-11-23T05:00:00+00:00")
    assert (start, end) == (datetime(2026, 11, 23, 3, tzinfo=UTC),
                            datetime(2026, 11, 23, 5, tzinfo=UTC))

    start, _ = window_bounds(6.0, until="2026-11-23T05:00:00+00:00")
    assert start == datetime(2026, 11, 23, 5, tzinfo=UTC) - timedelta(hours=6)


@pytest.mark.parametrize(("since", "until", "why"), [
    ("2026-11-23T04:00:00", "2026-11-23T05:00:00+00:00", "need a UTC offset"),
    ("2026-11-23T06:00:00+00:00", "2026-11-23T05:00:00+00:00", "starts .* after it ends"),
    ("2026-11-23T05:00:00+00:00", "2026-11-23T05:00:00+00:00", "starts .* after it ends"),
])
def test_a_window_without_offset_or_backwards_is_refused(since: str, until: str,
                                                         why: str) -> None:
    with pytest.raises(MonitorError, match=why):
        window_bounds(24.0, since, until)
