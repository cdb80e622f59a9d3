"""The simpler model a grader must beat: it finds a grade that lighting alone gives away, finds
nothing where there is nothing, and its gate passes only a grader above it."""

from __future__ import annotations

import numpy as np

from components.evaluate.baseline import baseline_qwk
from components.evaluate.gates import baseline_gate


def _cards(grades: np.ndarray, brightness_per_grade: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 60 + brightness_per_grade * grades[:, None, None, None]
    return np.clip(base + rng.normal(0, 20, (len(grades), 32, 48, 3)), 0, 255).astype(np.uint8)


def test_a_grade_that_lighting_gives_away_is_found_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    fit, test = rng.integers(1, 11, 120), rng.integers(1, 11, 80)
    geometry = np.zeros((200, 4), np.float32)

    telling = baseline_qwk(_cards(fit, 15, 1), geometry[:120], fit,
                           _cards(test, 15, 2), geometry[120:], test)
    blind = baseline_qwk(_cards(fit, 0, 1), geometry[:120], fit,
                         _cards(test, 0, 2), geometry[120:], test)

    assert telling > 0.9 and abs(blind) < 0.3


def test_the_baseline_gate_passes_only_a_grader_above_it() -> None:
    assert baseline_gate(0.93, 0.41).passed and "0.410" in baseline_gate(0.93, 0.41).rule
    assert not baseline_gate(0.40, 0.41).passed
    assert not baseline_gate(float("nan"), 0.41).passed


def test_a_baseline_margin_lets_a_grader_below_the_baseline_by_less_pass() -> None:
    """The test-scale demo's tiny graders are judged on a handful of cards, where a ridge
    regression beats them by chance: its margin lets any of them through, as its kappa's does."""
    assert baseline_gate(0.40, 0.41, margin=0.05).passed
    assert not baseline_gate(0.30, 0.41, margin=0.05).passed
    assert "0.410 - 0.05" in baseline_gate(0.40, 0.41, margin=0.05).rule
