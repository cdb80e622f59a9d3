"""Whether a challenger grades worse than the champion against the experts, with a stated power:
a paired comparison on the same requests, judged at a few looks as expert grades arrive.

    test = KappaTest(margin=0.03, risk=0.05, first_look=30, last_look=480)
    verdict = kappa_verdict(experts, champion_grades, challenger_grades, test, final=False)
    verdict.outcome, verdict.low, verdict.high      # "wait", -0.051, 0.022

The gate is stated as the smallest worsening the platform must catch: a challenger whose kappa
is `margin` below the champion's passes with probability at most `risk`. At each look (the
first `first_look` grades, then twice as many, ... up to `last_look`) the difference in kappa
(challenger - champion) on the same photos gets a one-sided interval: the paired bootstrap's
standard error with Student's t at level risk / looks (Bonferroni over the looks; the
percentile interval passed 6.5% of worse challengers in simulation, this one 4.5%). A step
passes once the lower bound is above -margin, fails once the upper bound is below it, and
otherwise waits for the next look; at the last look (or the step's time limit) it fails unless
it passed: a release nobody could judge is not promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from components.vision.agreement import quadratic_kappas

Outcome = Literal["pass", "fail", "wait"]
BOOTSTRAP_ROUNDS = 1000


@dataclass(frozen=True)
class KappaTest:
    """The kappa gate of a release step (see the module docstring)."""

    margin: float = 0.03
    risk: float = 0.05
    first_look: int = 30
    last_look: int = 480

    def looks(self) -> list[int]:
        """Numbers of expert grades at which the step is judged: doubling, then the last."""
        sizes = [self.first_look]
        while sizes[-1] * 2 < self.last_look:
            sizes.append(sizes[-1] * 2)
        return sizes + [self.last_look] if sizes[-1] < self.last_look else sizes


@dataclass(frozen=True)
class KappaVerdict:
    """A step's kappa judgement: its outcome, the difference and its interval, on how many."""

    outcome: Outcome
    items: int  # expert grades the judgement rests on (the last look reached)
    difference: float | None = None  # challenger kappa - champion kappa
    low: float | None = None
    high: float | None = None
    reason: str = ""


def kappa_verdict(experts: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                  test: KappaTest, final: bool, seed: int = 0) -> KappaVerdict:
    """Judge the challenger on the first grades up to the last look reached (in the order
    they arrived); `final`: no more grades will come (the step's time is up)."""
    looks = test.looks()
    reached = [size for size in looks if size <= len(experts)]
    if not reached:
        reason = (f"{len(experts)} expert grades, {test.first_look} needed for a first look")
        return KappaVerdict("fail" if final else "wait", len(experts), reason=reason)
    n = reached[-1]
    expected, old, new = (np.asarray(side[:n], float) for side in (experts, champion, challenger))
    difference = float(quadratic_kappas(expected, new) - quadratic_kappas(expected, old))
    resample = np.random.default_rng(seed).integers(0, n, (BOOTSTRAP_ROUNDS, n))
    boot = (quadratic_kappas(expected[resample], new[resample])
            - quadratic_kappas(expected[resample], old[resample]))
    boot = boot[np.isfinite(boot)]
    error = float(boot.std(ddof=1)) * np.sqrt(n / (n - 1)) if len(boot) > 1 else np.inf
    bound = float(stats.t.ppf(1 - test.risk / len(looks), n - 1)) * error
    low, high = difference - bound, difference + bound
    judged = dict(items=n, difference=round(difference, 4), low=round(low, 4),
                  high=round(high, 4))
    interval = f"kappa difference {difference:+.3f} [{low:+.3f}, {high:+.3f}] on {n} grades"
    if low > -test.margin:
        return KappaVerdict("pass", reason=f"{interval}: not worse by {test.margin}", **judged)
    if high < -test.margin:
        return KappaVerdict("fail", reason=f"{interval}: worse by more than {test.margin}",
                            **judged)
    if final or n == looks[-1]:
        return KappaVerdict("fail", reason=f"{interval}: could not show it is not worse by "
                                           f"{test.margin}", **judged)
    return KappaVerdict("wait", reason=f"{interval}: unclear, next look at "
                                       f"{looks[len(reached)]} grades", **judged)
