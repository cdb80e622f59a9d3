"""The kappa gate's power, simulated: streams of expert grades with a champion and a challenger
that is worse by the margin, equal, or better, judged look by look as `watch-step` does. A worse
challenger must be caught (not passed) at least 95% of the time, an equal one passed at least
90% of the time, and the vectorised kappa is sklearn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from components.release.verdict import KappaTest, kappa_verdict
from components.vision.agreement import quadratic_kappas

# The factory's grade shares 1..10; a champion reading grades to sd 0.6 has kappa 0.954.
SHARES = np.array([1, 2, 3, 5, 8, 12, 16, 20, 20, 13]) / 100
CHAMPION_NOISE = 0.6
TEST = KappaTest(margin=0.03, risk=0.05, first_look=30, last_look=480)
STREAMS = {"worse": 400, "equal": 200, "better": 100}


def _answers(experts: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(experts + rng.normal(0, noise, experts.shape)), 1, 10)


def _noise_for(kappa_gap: float) -> float:
    """The grading noise whose kappa differs from the champion's by `kappa_gap` (bisection on
    200000 grades)."""
    rng = np.random.default_rng(1)
    experts = rng.choice(np.arange(1, 11), 200_000, p=SHARES)
    noise = rng.normal(0, 1, experts.shape)

    def kappa(sd: float) -> float:
        return float(quadratic_kappas(experts, np.clip(np.rint(experts + sd * noise), 1, 10)))

    target, low, high = kappa(CHAMPION_NOISE) + kappa_gap, 0.05, 3.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if kappa(middle) > target else (low, middle)
    return low


def _outcome(challenger_noise: float, seed: int) -> str:
    """The step's outcome on one stream, judged at each look until it is clear."""
    rng = np.random.default_rng(1000 + seed)
    experts = rng.choice(np.arange(1, 11), TEST.last_look, p=SHARES)
    champion = _answers(experts, CHAMPION_NOISE, rng)
    challenger = _answers(experts, challenger_noise, rng)
    for size in TEST.looks():
        verdict = kappa_verdict(experts[:size], champion[:size], challenger[:size], TEST,
                                final=False, seed=seed)
        if verdict.outcome != "wait":
            return verdict.outcome
    raise AssertionError("the last look always decides")


@pytest.fixture(scope="module")
def pass_rates() -> dict[str, float]:
    noise = {"worse": _noise_for(-TEST.margin), "equal": CHAMPION_NOISE,
             "better": _noise_for(+0.02)}
    rates = {kind: float(np.mean([_outcome(noise[kind], seed) == "pass"
                                  for seed in range(count)]))
             for kind, count in STREAMS.items()}
    print(f"\npass rates over {STREAMS} streams: {rates}")
    return rates


def test_a_challenger_worse_by_the_margin_is_caught_95_percent_of_the_time(
        pass_rates: dict[str, float]) -> None:
    assert 1 - pass_rates["worse"] >= 0.95


def test_an_equal_or_better_challenger_passes_90_percent_of_the_time(
        pass_rates: dict[str, float]) -> None:
    assert pass_rates["equal"] >= 0.90 and pass_rates["better"] >= 0.90


def test_the_vectorised_kappa_is_sklearns_quadratic_kappa() -> None:
    rng = np.random.default_rng(3)
    experts = rng.integers(1, 11, (5, 40))
    model = np.clip(experts + rng.integers(-2, 3, experts.shape), 1, 10)

    expected = [cohen_kappa_score(e, m, labels=list(range(1, 11)), weights="quadratic")
                for e, m in zip(experts, model, strict=True)]

    np.testing.assert_allclose(quadratic_kappas(experts, model), expected, atol=1e-12)


def test_the_looks_double_up_to_the_last() -> None:
    assert TEST.looks() == [30, 60, 120, 240, 480]
    assert KappaTest(first_look=50, last_look=300).looks() == [50, 100, 200, 300]
