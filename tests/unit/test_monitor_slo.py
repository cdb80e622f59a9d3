"""The SLOs of a monitored window: error rate and p99 latency decide like drift does, and a
window too small to judge stays so."""

from __future__ import annotations

import pandas as pd

from components.monitor.drift import DriftJudgement
from components.monitor.params import SloParams
from components.monitor.slo import slo_signals


def _rows(errors: int, slow: int, total: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"error": ["boom"] * errors + [None] * (total - errors),
                         "latency_ms": [5000.0] * slow + [40.0] * (total - slow)})


def test_a_healthy_window_meets_both_objectives() -> None:
    signals = {s.name: s for s in slo_signals(_rows(errors=1, slow=0), SloParams())}
    assert signals["error_rate"].score == 0.01 and not signals["error_rate"].drifted
    assert signals["error_rate"].note == "1 of 100"
    assert signals["p99_latency_ms"].score == 40.0 and not signals["p99_latency_ms"].drifted


def test_a_breach_makes_an_ok_window_drift_and_leaves_a_small_one_alone() -> None:
    signals = slo_signals(_rows(errors=5, slow=3), SloParams())
    assert [s.name for s in signals if s.drifted] == ["error_rate", "p99_latency_ms"]
    judged = DriftJudgement("ok", 100, 300, 50).with_signals(signals)
    assert judged.status == "drift"
    assert [s.name for s in judged.drifted] == ["error_rate", "p99_latency_ms"]
    assert DriftJudgement("too_small", 10, 300, 50).with_signals(signals).status == "too_small"
    assert slo_signals(_rows(0, 0, total=0), SloParams()) == []
