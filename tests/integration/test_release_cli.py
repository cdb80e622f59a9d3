"""A reviewer's decisions as reviewers make them, through `gradeline approve` and `reject` (and
the tags in the MLflow UI) on a real registry: exit codes, what is printed, the audit line, the
champion afterwards, and a decision by someone who is not a reviewer ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from components.release.registry import releases_of
from components.settings import load_settings
from flows.release import conclude_release
from model_registry.audit import ACTION_APPROVAL
from model_registry.names import GRADER
from model_registry.versions import registry_client
from tests.integration.conftest import two_graders

pytestmark = pytest.mark.integration


def _awaiting(tmp_path: Path) -> Path:
    """Version 2 awaiting approval against champion 1; a params file listing reviewer ada."""
    settings = load_settings().activate()
    two_graders(settings, 1, tmp_path)
    releases = releases_of(settings)
    releases.enter_shadow(GRADER, 2, "test")
    releases.set_stage(GRADER, 2, "canary", "test", "shadow passed")
    releases.request_approval(GRADER, 2, "test")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"promote": {"reviewers": ["ada"]}}))
    return params


def _decide(verb: str, params: Path, *extra: str) -> object:
    return CliRunner().invoke(app, [verb, "--version", "2", "--by", "ada", "--params",
                                    str(params), *extra])


def test_a_reviewer_rejects_through_the_cli_and_the_champion_stays(home: Path,
                                                                   tmp_path: Path) -> None:
    params = _awaiting(tmp_path)

    rejected = _decide("reject", params, "--reason", "scratches graded too kindly")

    assert rejected.exit_code == 0, rejected.output
    assert rejected.stdout.strip() == f"{GRADER} version 2: rejected"
    releases = releases_of(load_settings())
    assert releases.aliases(GRADER)["champion"] == 1 and "challenger" not in \
        releases.aliases(GRADER)
    decision = [e for e in releases.audit.read(GRADER) if e.action == ACTION_APPROVAL][-1]
    assert (decision.actor, decision.reason) == ("ada", "scratches graded too kindly")
    late = _decide("approve", params)  # a decided version cannot be decided again
    assert late.exit_code == 2 and "error:" in late.output


def test_a_reviewer_approves_through_the_cli_and_the_version_is_champion(home: Path,
                                                                         tmp_path: Path) -> None:
    params = _awaiting(tmp_path)

    approved = _decide("approve", params, "--json")

    assert approved.exit_code == 0, approved.output
    report = json.loads(approved.stdout)
    assert (report["stage"], report["approved_by"]) == ("champion", "ada")
    assert releases_of(load_settings()).aliases(GRADER) == {"champion": 2, "previous": 1}
    # The promote that waited for this decision concludes after the CLI did: it reports the
    # stage as it stands instead of crowning again.
    assert conclude_release(GRADER, 2, str(params))["stage"] == "champion"


def test_an_approval_counts_only_from_a_listed_reviewer(home: Path, tmp_path: Path) -> None:
    params = _awaiting(tmp_path)
    client = registry_client(str(load_settings().mlflow_tracking_uri))

    for tag, value in (("approval", "approved"), ("approved_by", "mallory")):  # in the UI
        client.set_model_version_tag(GRADER, "2", tag, value)
    ignored = conclude_release(GRADER, 2, str(params))
    refused = CliRunner().invoke(app, ["approve", "--version", "2", "--by", "mallory",
                                       "--params", str(params)])
    client.set_model_version_tag(GRADER, "2", "approved_by", "ada")
    crowned = conclude_release(GRADER, 2, str(params))

    assert ignored["stage"] == "awaiting_approval" and "mallory" in ignored["ignored"]
    assert refused.exit_code == 2 and "'mallory' is not a reviewer" in refused.output
    assert crowned["stage"] == "champion" and crowned["approved_by"] == "ada"
