"""Telling on-call: a Prefect notification block on Apprise, and a local log of every alert.

    tell_on_call(settings, "card-grader 4 rolled back", "canary_25: error rate 0.2 > 0.01 ...")

Every alert is appended to `<home>/alerts.jsonl` (what on-call reads when no channel is set, and
the history when one is); with `GRADELINE_ALERT_URL` set (any Apprise URL: slack://, pagerduty://,
mailto://, json:// for a generic webhook) it is also sent through `OnCallChannel`.
"""

from __future__ import annotations

from prefect.blocks.notifications import AppriseNotificationBlock
from prefect.logging import get_run_logger
from prefect.logging.loggers import get_logger

from components.oncall import record_alert
from components.settings import GradelineSettings


class OnCallChannel(AppriseNotificationBlock):
    """The on-call channel: any URL Apprise understands (Slack, PagerDuty, email, webhook)."""

    _block_type_name = "Gradeline on-call"
    _block_type_slug = "gradeline-on-call"


def _logger():
    try:
        return get_run_logger()
    except Exception:  # outside a flow run (the CLI's rollback)
        return get_logger("gradeline.alerts")


def tell_on_call(settings: GradelineSettings, subject: str, body: str) -> None:
    """Record the alert in the home's alert log and send it to the configured channel."""
    record_alert(settings.home, subject, body)
    _logger().warning("on-call: %s", subject)
    if settings.alert_url is not None:
        OnCallChannel(url=settings.alert_url).notify(body, subject)
