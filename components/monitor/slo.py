"""The service objectives a monitored window is held to, read from the prediction log: the share
of the champion's requests that ended in an error, and its p99 latency.

    judgement = judge_window(reference, window, params, kappa).with_signals(
        slo_signals(predictions, params.slo))

An SLO breach alerts like drift, through the same incident (Prometheus rules in
`infra/prometheus/` watch the same objectives live, for an Alertmanager of your own).
"""

from __future__ import annotations

import pandas as pd

from components.monitor.drift import Signal
from components.monitor.params import SloParams


def slo_signals(predictions: pd.DataFrame, params: SloParams) -> list[Signal]:
    """Error rate and p99 latency of the rows of a prediction-log window (one model's answers,
    errors included); nothing to judge in an empty window."""
    if predictions.empty:
        return []
    error_rate = float(predictions["error"].notna().mean())
    p99 = float(predictions["latency_ms"].quantile(0.99))
    return [
        Signal("error_rate", "slo", error_rate, params.max_error_rate,
               "share of requests ending in an error", drifted=error_rate > params.max_error_rate,
               note=f"{int(predictions['error'].notna().sum())} of {len(predictions)}"),
        Signal("p99_latency_ms", "slo", p99, params.max_p99_ms, "99th percentile latency",
               drifted=p99 > params.max_p99_ms),
    ]
