"""The demo's plain parts: its `demo:` params, the timeline's steps and report, the params
file every flow of the demo reads, and the story in one line. The flow itself is
`flows/demo.py`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from components.overrides import ExplainedChange, deep_merge, explained_changes, unexplained
from components.params import StrictParams, load_params

NOT_IN_DEMO = ("defect detector (its starter checkpoint, `gradeline pretrain-detector`, takes "
               "hours on a CPU and is not made yet)",)
DEMO_REVIEWER = "gradeline demo (demo mode: a reviewer approves in the MLflow UI)"


class DemoParams(StrictParams):
    """The `demo:` section of params.yaml."""

    studio_cards: int = Field(240, ge=1, description="day 0's labeled studio batch")
    new_camera: str = Field("phone", description="the camera of day 4 (factory --camera)")
    new_camera_cards: int = Field(200, ge=1, description="photos the new camera takes on day 4: "
                                  "the queued ones, once reviewed, are the next batch")
    traffic_per_day: int = Field(60, ge=1, description="photos served each simulated day")
    quiet_days: int = Field(3, ge=1, description="studio days before the new camera arrives")
    clients: int = Field(2, ge=1, description="concurrent clients of the traffic")
    overrides: dict[str, Any] = Field(default_factory=dict, description="laid over the other "
                                      "sections of params.yaml for the flows the demo runs")
    why: dict[str, str] = Field(default_factory=dict, description="the reason for each "
                                "override, by dotted path (a path covers what is under it)")

    @model_validator(mode="after")
    def _every_override_explained(self) -> DemoParams:
        problems = unexplained(self.overrides, self.why)
        if problems:
            raise ValueError("demo.why must explain every demo.overrides setting: "
                             + "; ".join(problems))
        return self


class DemoFailed(RuntimeError):
    """A step of the story did not turn out as it must."""


@dataclass
class DemoStep:
    """One line of the demo's timeline: what ran, how long, its figures and files."""

    name: str
    seconds: float
    figures: dict[str, object]
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self, number: int) -> str:
        shown = "  ".join(f"{k}={v}" for k, v in self.figures.items())
        return "\n".join([f"[{number}] {self.name} ({self.seconds}s): {shown}",
                          *(f"      - {note}" for note in self.notes),
                          *(f"      -> {path}" for path in self.files)])


@dataclass
class DemoReport:
    """Everything the demo did, in order; `ok` is False when a step failed."""

    home: str
    steps: list[DemoStep] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok, "not_in_demo": list(NOT_IN_DEMO)}


def demo_params_file(source: Path, out: Path) -> tuple[DemoParams, Path, list[ExplainedChange]]:
    """The demo section of `source`; `source` with the demo's overrides laid over it, written
    to `out` (the params file every flow of the demo reads); and each change, with why. Demo
    mode approves its release as DEMO_REVIEWER, so that name joins promote.reviewers there."""
    params = load_params("demo", DemoParams, source)
    production = yaml.safe_load(source.read_text()) or {}
    merged = deep_merge(production, params.overrides)
    promote = merged.setdefault("promote", {})
    promote["reviewers"] = [*[name for name in promote.get("reviewers", [])
                              if name != DEMO_REVIEWER], DEMO_REVIEWER]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    return params, out, explained_changes(production, params.overrides, params.why)


def story_summary(steps: list[DemoStep]) -> str:
    """The story's figures in one line: the new camera's kappa against the experts before and
    after retraining, and the two days' drift verdicts."""
    drifted, after = [step for step in steps if step.name.endswith(": monitor")][-2:]
    reviewed = next(step for step in steps if "reviewed photos" in step.name)
    return (f"on the new camera, kappa against the experts: {reviewed.figures['kappa']} "
            f"(v{drifted.figures['version']}, {reviewed.figures['items']} reviewed photos of "
            f"{drifted.name.split(':')[0]}) -> {after.figures.get('kappa')} "
            f"(v{after.figures['version']}, {after.name.split(':')[0]}); drift: "
            f"{drifted.figures['status']}, then {after.figures['status']}")
