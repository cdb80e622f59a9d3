"""The window of served traffic a monitoring run judges, and why monitoring cannot judge.

    since, until = window_bounds(24.0, None, None)      # the last 24 hours, in UTC
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class MonitorError(RuntimeError):
    """Monitoring cannot judge: no champion, or a window that makes no sense."""


def window_bounds(window_hours: float, since: str | None = None,
                  until: str | None = None) -> tuple[datetime, datetime]:
    """[since, until) in UTC: explicit ISO times with an offset, or the last `window_hours`
    before `until` (now when None)."""
    end = datetime.fromisoformat(until) if until else datetime.now(UTC)
    start = datetime.fromisoformat(since) if since else end - timedelta(hours=window_hours)
    if start.tzinfo is None or end.tzinfo is None:
        raise MonitorError("window times need a UTC offset, e.g. 2026-11-23T04:00:00+00:00")
    if start >= end:
        raise MonitorError(f"the window starts ({start.isoformat()}) after it ends "
                           f"({end.isoformat()})")
    return start, end
