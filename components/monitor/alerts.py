"""The texts on-call reads about drift: what drifted and by how much, and what to do next.

An alert is read on a phone at night: the subject says which model and which signals, the body
gives the figures (score against threshold, and the method behind it), the window they come from,
where the report and the contact sheet of the most drifted photos are, and the two commands that
end the noise (silence, for a known change) or the harm (rollback).

    subject, body = drift_alert("card-grader", 3, "last 24h", judgement, report, sheet, verdict)
    tell_on_call(settings, subject, body)           # components.oncall
    subject, body = recovery_alert("card-grader", 3, "last 24h", verdict)
"""

from __future__ import annotations

from typing import Any

from components.monitor.incidents import Incident, Verdict, format_duration

_PREFIX = "[gradeline]"
_SUBJECT_SIGNALS = 4  # more drifted signals than this are counted, not named, in the subject


def _ratio(signal: dict[str, Any]) -> float:
    """How far past its threshold a drifted signal is: p-values and kappa drift downwards."""
    score, threshold = signal["score"], signal["threshold"]
    if signal.get("direction") == "below":
        score, threshold = threshold, score
    return score / threshold if threshold else float("inf")


def _line(signal: dict[str, Any]) -> str:
    if signal["score"] is None:  # not judged (too few expert grades, no embeddings)
        line = f"  {signal['name']} ({signal['kind']}): not judged ({signal['method']})"
    else:
        below = signal.get("direction") == "below"  # p-values and kappa drift downwards
        relation = ("<" if below else ">") if signal["drifted"] else (">=" if below else "<=")
        line = (f"  {signal['name']} ({signal['kind']}): {signal['score']:.3g} {relation} "
                f"{signal['threshold']:.3g} ({signal['method']})")
    return f"{line}, {signal['note']}" if signal.get("note") else line


def _incident(verdict: Verdict) -> Incident:
    if verdict.incident is None or verdict.incident.opened is None:
        raise ValueError(f"verdict {verdict.action!r} has no incident to tell on-call about")
    return verdict.incident


def drift_alert(model: str, version: int, window: str, judgement: dict[str, Any], report: str,
                sheet: str | None, verdict: Verdict) -> tuple[str, str]:
    """Subject and body of the alert (or reminder) about `model`'s drift in `window`."""
    incident = _incident(verdict)
    signals = judgement["signals"]
    drifted = sorted((s for s in signals if s["drifted"]), key=_ratio, reverse=True)
    within = [s for s in signals if not s["drifted"]]
    names = [s["name"] for s in drifted]
    named = ", ".join(names[:_SUBJECT_SIGNALS])
    if len(names) > _SUBJECT_SIGNALS:
        named += f" +{len(names) - _SUBJECT_SIGNALS} more"
    ongoing = (incident.last_alert or incident.opened) - incident.opened
    kind = f"drift ongoing {format_duration(ongoing)}" if ongoing else "drift"
    subject = f"{_PREFIX} {kind}: {model} v{version} ({named or 'no signal named'})"
    lines = [
        f"{model} version {version}: {len(drifted)} of {len(signals)} signals drifted in the "
        f"{window}, {judgement['window_size']} served photos vs "
        f"{judgement['reference_size']} reference.",
        "",
        "Drifted (score against threshold: p-values below it, distances above; method):",
        *(_line(s) for s in drifted),
    ]
    if within:
        lines += ["Within thresholds:", *(_line(s) for s in within)]
    lines += [
        "",
        f"Report: {report}",
        f"Most drifted photos: {sheet or 'no contact sheet'}",
        "",
        f"Incident {incident.id}, open since {incident.opened:%Y-%m-%d %H:%M} UTC: "
        f"{verdict.reason}.",
        "A known change (new camera, lighting)? Silence it:",
        f'  gradeline silence --model {model} --hours 12 --by <you> --reason "..."',
        "Served grades wrong? Roll back to the previous champion:",
        f'  gradeline rollback --model {model} --by <you> --reason "..."',
    ]
    return subject, "\n".join(lines)


def recovery_alert(model: str, version: int, window: str, verdict: Verdict) -> tuple[str, str]:
    """Subject and body of the message that `model`'s drift incident is over."""
    incident = _incident(verdict)
    if incident.duration is None:
        raise ValueError(f"incident {incident.id} of {model} is still open")
    lasted = format_duration(incident.duration)
    subject = f"{_PREFIX} recovered: {model} v{version} after {lasted}"
    body = "\n".join([
        f"{model} version {version} is within its drift thresholds again in the {window}.",
        f"Incident {incident.id} lasted {lasted}: opened {incident.opened:%Y-%m-%d %H:%M} UTC, "
        f"closed {incident.closed:%Y-%m-%d %H:%M} UTC.",
        f"Signals that drifted: {', '.join(incident.signals) or 'none recorded'}.",
    ])
    return subject, body
