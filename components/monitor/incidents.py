"""Incidents: one alert per drift incident, not one per monitor run.

The monitor judges a window every run; paging on-call every run for the same drift teaches them to
ignore the pager. An `IncidentBook` turns the stream of judgements into a few decisions: open an
incident (alert), stay quiet during the cooldown, remind when it has passed or when a new signal
drifts, announce the recovery, and hold alerts back while someone has silenced the model (a known
change, such as a new camera, announced in advance or while it happens).

    book = IncidentBook(home / "monitor" / "incidents.json", cooldown=timedelta(hours=6))
    verdict = book.observe("card-grader", "drift", ["brightness"], now=datetime.now(UTC))
    verdict.action, verdict.incident_id     # "alert", "card-grader-20261123T0405"
    book.silence("card-grader", until=now + timedelta(hours=12), reason="new lamp", by="ada")

The state is one small JSON file per home, rewritten atomically under a lock: the monitor flow and
the `gradeline silence` command both write it. Only open incidents (and silences announced in
advance) are kept; the history of what on-call was told is the alert log.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "drift", "too_small"]
Action = Literal["alert", "quiet", "silenced", "recovered", "none"]
_FORMAT_VERSION = 1
_TIMES = ("opened", "last_alert", "silenced_until", "closed")


class IncidentStateError(RuntimeError):
    """The incident state file cannot be read as incident state."""


def format_duration(span: timedelta) -> str:
    """A span as on-call reads it: "2d 3h", "5h 12m", "40m", "0m"."""
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} {moment.isoformat()} has no time zone; give a tz-aware time")
    return moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Incident:
    """A model's incident as it stands; `id` and `opened` are None for one not opened yet, which
    only carries a silence announced in advance."""

    model: str
    id: str | None = None
    opened: datetime | None = None
    last_alert: datetime | None = None
    signals: tuple[str, ...] = ()
    silenced_until: datetime | None = None
    silence_reason: str | None = None
    silenced_by: str | None = None
    closed: datetime | None = None

    @property
    def duration(self) -> timedelta | None:
        """How long the incident lasted, once it is closed."""
        return None if self.opened is None or self.closed is None else self.closed - self.opened

    def silenced_at(self, now: datetime) -> bool:
        """Whether a silence holds alerts back at `now`."""
        return self.silenced_until is not None and now < self.silenced_until

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe fields, times in ISO 8601."""
        fields = asdict(self)
        fields.update({name: fields[name] and fields[name].isoformat() for name in _TIMES})
        fields["signals"] = list(self.signals)
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Incident:
        """The incident `as_dict` wrote; KeyError, TypeError or ValueError when it is not one."""
        parsed = {name: fields[name] and _utc(datetime.fromisoformat(fields[name]), name)
                  for name in _TIMES}
        return cls(model=fields["model"], id=fields["id"], signals=tuple(fields["signals"]),
                   silence_reason=fields["silence_reason"], silenced_by=fields["silenced_by"],
                   **parsed)


@dataclass(frozen=True)
class Verdict:
    """What to do about one judgement: `action`, why in one line, and the incident after it."""

    action: Action
    incident_id: str | None
    reason: str
    incident: Incident | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe fields, for the flow's logs and artifacts."""
        return {"action": self.action, "incident_id": self.incident_id, "reason": self.reason,
                "incident": None if self.incident is None else self.incident.as_dict()}


class IncidentBook:
    """The open incidents of every model, kept in one JSON file at `path`."""

    def __init__(self, path: Path, cooldown: timedelta) -> None:
        self.path = Path(path)
        self.cooldown = cooldown

    def observe(self, model: str, status: Status, drifted: list[str], now: datetime) -> Verdict:
        """Record the monitor's judgement of `model` at `now` and decide whom to tell."""
        now = _utc(now, "now")
        with self._state() as state:
            current = state.get(model)
            verdict = _judge(model, status, drifted, now, current, self.cooldown)
            if verdict.action == "recovered":
                state.pop(model)
            elif verdict.incident is not None:
                state[model] = verdict.incident
            elif current is not None and not current.silenced_at(now):
                state.pop(model)  # a silence announced in advance that ran out unused
        return verdict

    def silence(self, model: str, until: datetime, reason: str, by: str,
                now: datetime | None = None) -> Incident:
        """Hold back `model`'s alerts until `until`: its open incident's, or else those of any
        incident that opens before then."""
        now = _utc(now or datetime.now(UTC), "now")
        until = _utc(until, "until")
        if until <= now:
            raise ValueError(f"cannot silence {model} until {until.isoformat()}: that is not "
                             f"after now ({now.isoformat()})")
        if not reason.strip() or not by.strip():
            raise ValueError(f"silencing {model} needs a reason and who silences it")
        with self._state() as state:
            incident = replace(state.get(model) or Incident(model), silenced_until=until,
                               silence_reason=reason, silenced_by=by)
            state[model] = incident
        return incident

    @contextmanager
    def _state(self) -> Iterator[dict[str, Incident]]:
        """The state under an exclusive lock, written back (atomically) when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            self._write(state)

    def _read(self) -> dict[str, Incident]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text())
            if document.get("version") != _FORMAT_VERSION:
                raise ValueError(f"format version {document.get('version')!r}, "
                                 f"expected {_FORMAT_VERSION}")
            return {model: Incident.from_dict(fields)
                    for model, fields in document["models"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise IncidentStateError(
                f"incident state {self.path} is corrupt ({type(error).__name__}: {error}); "
                "fix or move the file: it is never reset on its own, so silences and open "
                "incidents are not lost") from None

    def _write(self, state: dict[str, Incident]) -> None:
        document = {"version": _FORMAT_VERSION,
                    "models": {model: incident.as_dict() for model, incident in state.items()}}
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(document, out, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise


def _judge(model: str, status: Status, drifted: list[str], now: datetime,
           current: Incident | None, cooldown: timedelta) -> Verdict:
    """The rules, as a pure function of the judgement and the incident before it."""
    is_open = current is not None and current.opened is not None
    incident = current if is_open else None
    incident_id = incident.id if incident is not None else None
    if status == "too_small":
        return Verdict("none", incident_id, "window too small to judge: incident unchanged",
                       incident)
    if status == "ok":
        if incident is None:
            return Verdict("none", None, "no drift", None)
        closed = replace(incident, closed=now, silenced_until=None, silence_reason=None,
                         silenced_by=None)
        lasted = format_duration(now - incident.opened)
        return Verdict("recovered", incident_id,
                       f"drift over at {_stamp(now)}, after {lasted}", closed)
    if status != "drift":
        raise ValueError(f"status {status!r} of {model} is not one of ok, drift, too_small")
    names = sorted(set(drifted))
    if incident is None:
        planned = current if current is not None and current.silenced_at(now) else None
        incident = replace(planned or Incident(model), id=f"{model}-{now:%Y%m%dT%H%M}",
                           opened=now)
        reason = f"drift opened the incident: {', '.join(names)}"
    else:
        new = [name for name in names if name not in incident.signals]
        waited = None if incident.last_alert is None else now - incident.last_alert
        if new:
            reason = f"new drifted signal(s): {', '.join(new)}"
        elif waited is None:
            reason = "no alert sent yet for this incident"
        elif waited >= cooldown:
            reason = (f"still drifting after the {format_duration(cooldown)} cooldown "
                      f"(last alert {format_duration(waited)} ago)")
        else:
            reminder = _stamp(incident.last_alert + cooldown)
            return Verdict("quiet", incident.id,
                           f"still drifting; next reminder after {reminder}", incident)
    signals = tuple(sorted(set(incident.signals) | set(names)))
    if incident.silenced_at(now):
        silenced = replace(incident, signals=signals)
        return Verdict("silenced", silenced.id,
                       f"{reason}; silenced by {silenced.silenced_by} until "
                       f"{_stamp(silenced.silenced_until)}: {silenced.silence_reason}", silenced)
    alerted = replace(incident, signals=signals, last_alert=now)
    return Verdict("alert", alerted.id, reason, alerted)
