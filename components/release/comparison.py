"""Champion against challenger over one window of the prediction log: errors, tail latency,
grade agreement on the requests both graded, and each side's QWK against the experts' grades.

    comparison = compare_roles(log, "card-grader", champion_version=3, challenger_version=4,
                               since=step_started)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from components.predlog import PredictionLog
from components.vision.agreement import grading_metrics


@dataclass(frozen=True)
class RoleComparison:
    """Champion against challenger over the same window. Error rates are 0.0 for a side without
    requests; latencies (of the answers a side gave clients) are None without such answers, and
    the agreement figures None without pairs (a request both graded, neither with an error), so
    no figure is ever NaN."""

    pairs: int
    champion_requests: int
    challenger_requests: int
    champion_answered: int  # of its requests, the answers that went to clients (timed)
    challenger_answered: int
    champion_error_rate: float
    challenger_error_rate: float
    champion_latency_ms: float | None  # of answers to clients, at `latency_quantile`
    challenger_latency_ms: float | None
    agreement_exact: float | None
    agreement_within_one: float | None
    mean_abs_grade_difference: float | None
    latency_quantile: float = 0.99
    expert_items: int = 0  # pairs whose photo an expert has graded since
    champion_kappa: float | None = None  # QWK against those experts' grades
    challenger_kappa: float | None = None
    # (expert, champion, challenger) grade of each of those photos, in the order served: what
    # the kappa test resamples; left out of as_dict (the figures), and of equality.
    judged: tuple[tuple[int, int, int], ...] = field(default=(), compare=False, repr=False)

    def as_dict(self) -> dict[str, float | int | None]:
        return {key: value for key, value in asdict(self).items() if key != "judged"}


def compare_roles(log: PredictionLog, model: str, champion_version: int,
                  challenger_version: int, since: datetime) -> RoleComparison:
    """How the challenger (in shadow or canary) did next to the champion since `since`: errors
    and tail latency of each side, grade agreement on the requests both graded, and each side's
    QWK on those whose photo an expert has graded."""
    champion = log.window(since=since, model=model, roles=["champion"], version=champion_version)
    challenger = log.window(since=since, model=model, roles=["challenger", "shadow"],
                            version=challenger_version)
    graded = [side.loc[side["grade"].notna() & side["error"].isna(), ["request_id", "grade"]]
              .drop_duplicates("request_id") for side in (champion, challenger)]
    pairs = graded[0].merge(graded[1], on="request_id", suffixes=("_champion", "_challenger"))
    difference = (pairs["grade_champion"] - pairs["grade_challenger"]).abs().to_numpy(float)
    # Latency is what clients wait for: the answers each side gave them. Off-path scoring
    # (shadow, and the champion's score of a canary's request) queues behind clients'
    # requests by design, so it is never timed against them: a shadow step compares none.
    timed = [side.loc[side["answered"]] for side in (champion, challenger)]
    quantile = latency_quantile(min(len(side) for side in timed))
    have_pairs = len(pairs) > 0
    judged = pairs.merge(log.expert_grades(), on="request_id")
    kappas = {side: grading_metrics(judged["grade"].to_numpy(int),
                                    judged[f"grade_{side}"].to_numpy(int))["qwk"]
              for side in ("champion", "challenger")} if len(judged) else {}
    return RoleComparison(
        pairs=len(pairs),
        champion_requests=len(champion),
        challenger_requests=len(challenger),
        champion_answered=len(timed[0]),
        challenger_answered=len(timed[1]),
        champion_error_rate=_error_rate(champion),
        challenger_error_rate=_error_rate(challenger),
        latency_quantile=quantile,
        champion_latency_ms=_latency(timed[0], quantile),
        challenger_latency_ms=_latency(timed[1], quantile),
        agreement_exact=float(np.mean(difference == 0)) if have_pairs else None,
        agreement_within_one=float(np.mean(difference <= 1)) if have_pairs else None,
        mean_abs_grade_difference=float(difference.mean()) if have_pairs else None,
        expert_items=len(judged),
        champion_kappa=kappas.get("champion"),
        challenger_kappa=kappas.get("challenger"),
        judged=tuple(zip(*(judged[column].astype(int).tolist() for column in
                           ("grade", "grade_champion", "grade_challenger")), strict=True)),
    )


def _error_rate(frame: pd.DataFrame) -> float:
    return float(frame["error"].notna().mean()) if len(frame) else 0.0


def latency_quantile(requests: int) -> float:
    """The latency quantile a step of `requests` per side can compare: a p99 needs 100 requests
    to rest on more than the single slowest one, a p90 20; below that, the median."""
    return 0.99 if requests >= 100 else 0.9 if requests >= 20 else 0.5


def _latency(frame: pd.DataFrame, quantile: float) -> float | None:
    """Latency at `quantile`, interpolated as numpy does by default; None without requests."""
    return float(np.quantile(frame["latency_ms"], quantile)) if len(frame) else None
