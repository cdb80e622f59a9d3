"""Each flow's parameters: a typed model per stage, read from that stage's section of params.yaml.

    params = load_params("ingest", IngestParams)

The values that reached a run are the ones logged with it; a key missing from params.yaml takes
the model's documented default, and an unknown key is an error, so a typo never goes unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from components.settings import find_project_root

Params = TypeVar("Params", bound=BaseModel)


class StrictParams(BaseModel):
    """Base of every params.yaml section: an unknown key is an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamsError(ValueError):
    """params.yaml is missing a stage section's valid values."""


def load_params(stage: str, model: type[Params], path: Path | None = None) -> Params:
    """The `stage` section of params.yaml (default: the project's) validated as `model`."""
    path = path or find_project_root() / "params.yaml"
    document = yaml.safe_load(path.read_text()) if path.is_file() else {}
    try:
        return model.model_validate((document or {}).get(stage) or {})
    except ValidationError as error:
        raise ParamsError(f"{path}: section {stage!r}: {error}") from None
