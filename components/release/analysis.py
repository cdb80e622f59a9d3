"""The analysis of one release step: the challenger against the champion on the same requests.

    comparison = compare_roles(log, "card-grader", champion_version=3, challenger_version=4,
                               since=step_started)
    verdict = analyse_step("canary_25", comparison, params.analysis, minimum=50)
    verdict.passed, verdict.failures        # False, ["error rate 0.200 > champion 0.000 + 0.01"]

A step passes when the challenger errs no more than the champion (plus a margin), is no slower at
p99 than a ratio of the champion's, is shown not to grade worse against the experts by the
kappa margin once enough of their grades have arrived (POST /v1/feedback; `verdict.py`: it
waits for more while the evidence is unclear) or, until then, agrees with the champion often
enough, and was seen on enough requests to judge. Too few requests is a failure too: a release
that nobody watched is not promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from components.params import StrictParams
from components.release.comparison import RoleComparison
from components.release.verdict import KappaTest, kappa_verdict


class AnalysisParams(StrictParams):
    """What a challenger must show at every step against the champion."""

    max_error_rate_increase: float = Field(0.01, ge=0, description="challenger error rate may "
                                           "exceed the champion's by this much")
    max_latency_ratio: float = Field(1.5, gt=0, description="challenger tail latency over the "
                                     "champion's, at the quantile the step's size allows")
    min_timed_requests: int = Field(20, ge=1, description="answers each side gave clients "
                                    "before latency is judged; until then a step waits")
    min_agreement_within_one: float = Field(0.9, ge=0, le=1, description="share of requests "
                                            "where the two grades differ by at most one")
    kappa_margin: float = Field(0.03, gt=0, description="the smallest worsening of QWK against "
                                "experts' grades a step must catch")
    kappa_risk: float = Field(0.05, gt=0, lt=1, description="the chance of passing a challenger "
                              "worse by the margin")
    min_expert_items: int = Field(30, ge=2, description="expert-graded requests at the first "
                                  "look at kappa; below them the agreement proxy decides")
    max_expert_items: int = Field(480, ge=2, description="expert-graded requests at the last "
                                  "look: a step still unclear then fails")

    def kappa_test(self) -> KappaTest:
        return KappaTest(self.kappa_margin, self.kappa_risk, self.min_expert_items,
                         max(self.max_expert_items, self.min_expert_items))


class ShadowParams(StrictParams):
    min_pairs: int = Field(50, ge=1, description="requests scored by both before judging")
    max_wait_seconds: float = Field(900, gt=0, description="fail if traffic is this thin")


class CanaryParams(StrictParams):
    steps: tuple[float, ...] = Field((0.05, 0.25, 0.5), description="shares of requests the "
                                     "challenger answers, in order")
    min_requests: int = Field(50, ge=1, description="challenger answers per step before judging")
    max_wait_seconds: float = Field(900, gt=0)


class PromoteParams(StrictParams):
    """The `promote:` section of params.yaml."""

    shadow: ShadowParams = ShadowParams()
    canary: CanaryParams = CanaryParams()
    analysis: AnalysisParams = AnalysisParams()
    poll_seconds: float = Field(2.0, gt=0, description="how often traffic and approval are read")
    reviewers: tuple[str, ...] = Field((), description="who may approve or reject a release "
                                       "(its approved_by tag); a decision by anyone else is "
                                       "ignored, and with none listed no decision counts")


@dataclass(frozen=True)
class StepVerdict:
    """The judgement of one step, with the figures it rests on."""

    step: str
    passed: bool
    figures: dict[str, float | int | str | None]
    failures: list[str] = field(default_factory=list)
    pending: bool = False  # the evidence is not clear yet: the step waits for more
    waiting_for: str = ""  # what it waits for, when pending

    def as_dict(self) -> dict[str, object]:
        return {"step": self.step, "passed": self.passed, "figures": self.figures,
                "failures": self.failures}


def analyse_step(step: str, comparison: RoleComparison, params: AnalysisParams,
                 minimum: int, final: bool = True) -> StepVerdict:
    """Judge the challenger against the champion on the step's requests; `minimum` is the
    number of challenger requests below which nothing can be judged. Unless `final` (the
    step's time is up), a kappa test still unclear, or a canary's latency timed on fewer than
    `min_timed_requests` answers per side, leaves the verdict pending."""
    c = comparison
    failures = []
    if c.challenger_requests < minimum:
        failures.append(f"only {c.challenger_requests} challenger requests, {minimum} needed")
    error_limit = c.champion_error_rate + params.max_error_rate_increase
    if c.challenger_error_rate > error_limit:
        failures.append(f"error rate {c.challenger_error_rate:.3f} > champion "
                        f"{c.champion_error_rate:.3f} + {params.max_error_rate_increase}")
    # A canary's challenger answers a share of clients; a median of the first few answered on
    # a busy machine moved 2x between identical graphs (a demo run: 179 against 104 ms on 7
    # answers), so latency waits for enough of them, and is not judged if the step ends first.
    timed = min(c.champion_answered, c.challenger_answered)
    latency_waits = c.challenger_answered > 0 and timed < params.min_timed_requests
    if not latency_waits and c.champion_latency_ms and c.challenger_latency_ms and \
            c.challenger_latency_ms > params.max_latency_ratio * c.champion_latency_ms:
        name = f"p{round(c.latency_quantile * 100)}"
        failures.append(f"{name} {c.challenger_latency_ms:.1f} ms > {params.max_latency_ratio} "
                        f"x champion {c.champion_latency_ms:.1f} ms")
    # Experts' grades are the truth; agreement with the champion is the proxy while too few have
    # arrived. A retrain after drift is meant to disagree with a champion that drifted.
    kappa = None
    if c.expert_items >= params.min_expert_items:
        experts, champion, challenger = (np.array(side) for side in zip(*c.judged, strict=True))
        kappa = kappa_verdict(experts, champion, challenger, params.kappa_test(), final)
        if kappa.outcome == "fail":
            failures.append(kappa.reason)
    elif c.agreement_within_one is not None and \
            c.agreement_within_one < params.min_agreement_within_one:
        failures.append(f"agreement within one grade {c.agreement_within_one:.3f} < "
                        f"{params.min_agreement_within_one} (and {c.expert_items} expert grades, "
                        f"{params.min_expert_items} needed to judge on them instead)")
    figures: dict[str, float | int | str | None] = {
        name: round(value, 4) if isinstance(value, float) else value
        for name, value in c.as_dict().items()}
    if kappa is not None:
        figures.update({"kappa_verdict": kappa.outcome, "kappa_items": kappa.items,
                        "kappa_difference": kappa.difference, "kappa_low": kappa.low,
                        "kappa_high": kappa.high})
    waiting = []
    if kappa is not None and kappa.outcome == "wait":
        waiting.append(f"kappa difference {kappa.difference} [{kappa.low}, {kappa.high}] on "
                       f"{kappa.items} expert grades is unclear")
    if latency_waits and not final:
        waiting.append(f"latency is timed on {timed} answers per side, "
                       f"{params.min_timed_requests} needed")
    pending = bool(waiting) and not failures
    return StepVerdict(step, not failures and not pending, figures, failures, pending,
                       "; ".join(waiting))
