"""Settings laid over params.yaml for one run, each with the reason it differs from production:
the demo changes a few budgets and gates, and says which and why in its timeline.

    overrides = {"promote": {"canary": {"min_requests": 35, "steps": [0.25, 0.5]}}}
    why = {"promote.canary": "a demo day has 60 photos"}     # covers min_requests and steps
    merged = deep_merge(production, overrides)           # what the run's flows read
    for change in explained_changes(production, overrides, why):
        change.line()   # "promote.canary: min_requests 50 -> 35 (a demo day has 60 photos)"

A reason covers the setting it names and everything under it; a setting without a reason, or a
reason for no setting, is an error (`unexplained`), so the list of changes cannot go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on it: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = (deep_merge(below if isinstance(below, dict) else {}, value)
                       if isinstance(value, dict) else value)
    return merged


def setting_paths(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The leaves of a nested mapping by dotted path: {"a": {"b": 1}} -> {"a.b": 1}."""
    leaves: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(setting_paths(value, f"{path}."))
        else:
            leaves[path] = value
    return leaves


def _covers(reason_path: str, setting: str) -> bool:
    return setting == reason_path or setting.startswith(f"{reason_path}.")


def unexplained(overrides: dict[str, Any], why: dict[str, str]) -> list[str]:
    """What is wrong with the reasons: each overridden setting no reason covers, and each
    reason that covers no overridden setting; empty when every change is explained."""
    settings = list(setting_paths(overrides))
    return ([f"{setting}: changed without a reason" for setting in settings
             if not any(_covers(path, setting) for path in why)]
            + [f"{path}: a reason for no changed setting" for path in why
               if not any(_covers(path, setting) for setting in settings)])


@dataclass(frozen=True)
class ChangedSetting:
    """One setting a run changes: its production value (None where params.yaml leaves it to
    the default) and the run's value."""

    path: str
    production: Any
    value: Any


@dataclass(frozen=True)
class ExplainedChange:
    """The settings one reason covers (`path` and what is under it), and the reason."""

    path: str
    settings: list[ChangedSetting]
    why: str

    def line(self) -> str:
        """`path: [setting below it] production -> value, ... (why)`."""
        return f"{self.path}: {', '.join(map(self._change, self.settings))} ({self.why})"

    def _change(self, setting: ChangedSetting) -> str:
        below = "" if setting.path == self.path else setting.path.removeprefix(f"{self.path}.")
        production = "default" if setting.production is None else setting.production
        return f"{below} {production} -> {setting.value}".lstrip()


def explained_changes(production: dict[str, Any], overrides: dict[str, Any],
                      why: dict[str, str]) -> list[ExplainedChange]:
    """Every setting `overrides` changes in `production`, grouped under the reason that covers
    it most closely, in the order of `why`; ValueError naming the unexplained ones."""
    problems = unexplained(overrides, why)
    if problems:
        raise ValueError("; ".join(problems))
    current = setting_paths(production)
    grouped: dict[str, list[ChangedSetting]] = {path: [] for path in why}
    for path, value in setting_paths(overrides).items():
        closest = max((reason for reason in why if _covers(reason, path)), key=len)
        grouped[closest].append(ChangedSetting(path, current.get(path), value))
    return [ExplainedChange(path, settings, why[path]) for path, settings in grouped.items()]
