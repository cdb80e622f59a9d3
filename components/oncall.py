"""Telling on-call from any process, the flows', the CLI's or the grading service's: a line in
the home's alert log (what on-call reads when no channel is set, and the history when one is),
and the Apprise channel (Slack, PagerDuty, email, a webhook) when `GRADELINE_ALERT_URL` names
one.

    tell_on_call(settings, "card-grader 4 rolled back", "canary_25: error rate 0.2 > 0.01")
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from components.settings import GradelineSettings

ALERTS_FILE = "alerts.jsonl"
_log = logging.getLogger("gradeline.oncall")


def record_alert(home: Path, subject: str, body: str) -> Path:
    """Append the alert to `<home>/alerts.jsonl`; the file's path."""
    path = home / ALERTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(json.dumps({"time": datetime.now(UTC).isoformat(), "subject": subject,
                              "body": body}) + "\n")
    return path


def send_alert(url: SecretStr | None, subject: str, body: str) -> bool:
    """Send the alert to the Apprise `url` (nothing when None); whether it was delivered."""
    if url is None:
        return False
    import apprise  # only when a channel is set: it loads every notification plugin

    channel = apprise.Apprise()
    channel.add(url.get_secret_value())
    return bool(channel.notify(body=body, title=subject))


def tell_on_call(settings: GradelineSettings, subject: str, body: str) -> None:
    """Record the alert in the home's alert log and send it to the home's channel, if any."""
    record_alert(settings.home, subject, body)
    _log.warning("on-call: %s", subject)
    if settings.alert_url is not None and not send_alert(settings.alert_url, subject, body):
        _log.error("on-call: the channel did not take %r; it is in %s", subject,
                   settings.home / ALERTS_FILE)
