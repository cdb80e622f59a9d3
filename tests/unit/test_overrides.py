"""Settings laid over params.yaml with their reasons: merged without touching either side, every
change explained, reasons grouped and shown against production's values."""

from __future__ import annotations

import pytest
import yaml

from components.overrides import deep_merge, explained_changes, unexplained
from components.settings import find_project_root

PRODUCTION = {"promote": {"canary": {"steps": [0.05, 0.25], "min_requests": 50},
                          "poll_seconds": 2}, "serve": {"refresh_seconds": 5}}
OVERRIDES = {"promote": {"canary": {"min_requests": 35, "max_wait_seconds": 300},
                         "poll_seconds": 1}}


def test_overrides_merge_key_by_key_and_neither_side_is_changed() -> None:
    merged = deep_merge(PRODUCTION, OVERRIDES)

    assert merged == {"promote": {"canary": {"steps": [0.05, 0.25], "min_requests": 35,
                                             "max_wait_seconds": 300}, "poll_seconds": 1},
                      "serve": {"refresh_seconds": 5}}
    merged["promote"]["canary"]["min_requests"] = 1
    fresh = deep_merge({}, OVERRIDES)
    fresh["promote"]["reviewers"] = ["demo"]
    assert PRODUCTION["promote"]["canary"]["min_requests"] == 50
    assert "reviewers" not in OVERRIDES["promote"]


def test_every_change_needs_a_reason_and_every_reason_a_change() -> None:
    assert unexplained(OVERRIDES, {"promote": "a demo day has 60 photos"}) == []
    assert unexplained(OVERRIDES, {"promote.canary": "small", "serve": "fast"}) == [
        "promote.poll_seconds: changed without a reason", "serve: a reason for no changed setting"]
    with pytest.raises(ValueError, match="promote.poll_seconds: changed without a reason"):
        explained_changes(PRODUCTION, OVERRIDES, {"promote.canary": "small"})


def test_changes_are_grouped_under_the_closest_reason_against_production_values() -> None:
    why = {"promote": "fewer photos", "promote.poll_seconds": "fit 10 minutes"}

    lines = [change.line() for change in explained_changes(PRODUCTION, OVERRIDES, why)]

    assert lines == ["promote: canary.min_requests 50 -> 35, canary.max_wait_seconds default "
                     "-> 300 (fewer photos)", "promote.poll_seconds: 2 -> 1 (fit 10 minutes)"]


def test_the_demo_explains_every_setting_it_changes() -> None:
    demo = yaml.safe_load((find_project_root() / "params.yaml").read_text())["demo"]
    assert demo["overrides"] and unexplained(demo["overrides"], demo["why"]) == []
