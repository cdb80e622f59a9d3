"""The cluster profile on loopback, as `gradeline up --profile cluster` starts it: PostgreSQL,
S3 (moto), the Prefect server and MLflow (two workers) on them, a worker, two serve replicas
behind nginx. Every step runs through the `gradeline` command on the home, which reads the
stack's cluster.env: ingest to the S3 remote, train and evaluate with MLflow's store on
PostgreSQL and artifacts on S3 (one `gradeline retrain`), the first champion, then a release
under traffic through the balancer that both replicas follow within one refresh, and
monitoring on the PostgreSQL prediction log. Then one replica is killed under traffic.
`gradeline down` leaves nothing.

Training and evaluation run once (tiny budgets, gates open as the demo's tests open them: this
checks where state goes, not model quality); the released challenger is that trained model
registered again with the tags its evaluation wrote, since the release is what that step checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
import yaml
from mlflow import MlflowClient

from components.predlog import PredictionLog
from components.serving.loopback import free_port
from components.serving.traffic import Traffic, TrafficKeys, photos_of_batch
from components.settings import load_settings
from model_registry import get_version, register_candidate
from model_registry.names import GRADER
from tests.stack import gradeline, poll, processes_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = Path(__file__).with_name("tiny_params.yaml")
REFRESH_S = 1.0
RUNS, STEPS = 4, 8  # per concurrent MLflow writer
_WRITER = """
import sys
from mlflow import MlflowClient
client = MlflowClient()
experiment = client.get_experiment_by_name("concurrent").experiment_id
for index in range(int(sys.argv[2])):
    run = client.create_run(experiment, run_name=f"{sys.argv[1]}-{index}").info.run_id
    client.log_param(run, "writer", sys.argv[1])
    for step in range(int(sys.argv[3])):
        client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
    client.log_text(run, f"written by {sys.argv[1]}", "notes.txt")
    client.set_terminated(run)
"""


@dataclass(frozen=True)
class Cluster:
    """A running cluster stack: its home, params file, ports and a client key."""

    home: Path
    params: Path
    stack: dict[str, object]
    key: str

    @property
    def balancer(self) -> str:
        return f"http://127.0.0.1:{self.stack['ports']['balancer']}"

    def replica(self, name: str) -> str:
        return f"http://127.0.0.1:{self.stack['ports'][name]}"

    def run(self, *args: str, timeout: float = 300) -> dict[str, object]:
        """`gradeline ARGS --json` on the home; its JSON answer (fails on a non-zero exit)."""
        done = gradeline(self.home, *args, "--json", timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    def settings_env(self) -> dict[str, str]:
        """The environment the home's commands run with (its cluster.env read)."""
        return load_settings(home=self.home).service_env()


def _params(folder: Path) -> Path:
    """tiny_params.yaml with open gates, a service that re-reads aliases every second and
    release steps judged on a few requests."""
    params = yaml.safe_load(TINY.read_text())
    params["train"]["grade"]["fast"].update(views=1, epochs=2, patience=2)
    params["evaluate"]["gates"] = {"kappa_margin": 3.0, "max_ece": 1.0, "coverage_margin": 0.9,
                                   "baseline_margin": 3.0}
    params["serve"] = {"refresh_seconds": REFRESH_S, "drain_seconds": 0.5}
    params["promote"] = {"reviewers": ["ada"], "poll_seconds": 0.5,
                         "shadow": {"min_pairs": 8, "max_wait_seconds": 120},
                         "canary": {"steps": [0.5], "min_requests": 4, "max_wait_seconds": 120},
                         "analysis": {"min_expert_items": 1000, "min_agreement_within_one": 0.0,
                                      "max_latency_ratio": 100, "min_timed_requests": 1}}
    params["monitor"] = {"min_window": 20, "min_expert_items": 1000, "reference_items": 50}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    home, params = root / "home", _params(root)
    assert gradeline(home, "keys", "create", "--name", "clients", "--role", "client",
                     "--out", str(root / "client.key")).returncode == 0
    up = gradeline(home, "up", "--profile", "cluster", "--prefect-port", str(free_port()),
                   "--mlflow-port", str(free_port()), "--serve-port", str(free_port()),
                   "--params", str(params), timeout=400)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield Cluster(home, params, json.loads((home / "stack" / "stack.json").read_text()),
                      (root / "client.key").read_text().strip())
    finally:
        down = gradeline(home, "down", timeout=200)
        assert down.returncode == 0, down.stderr
        assert processes_of(home) == []
        assert not (home / "stack" / "cluster.env").exists()
        assert not Path(json.loads((home / "stack" / "stack.json").read_text())
                        ["postgres_folder"]).exists()


@pytest.fixture(scope="module")
def trained(cluster: Cluster, factory_batches: dict[str, Path]) -> dict[str, object]:
    """Version 1 ingested, trained and evaluated by `gradeline retrain` (one flow run of all
    three, as a drift alert starts it), then made the first champion on the cluster."""
    retrained = cluster.run("retrain", "--source", str(factory_batches["first"]),
                            "--no-promote", "--params", str(cluster.params), timeout=400)
    cluster.run("promote", "--model", GRADER, "--version", "1", "--first")
    return retrained


def _serving(url: str) -> dict[str, int]:
    """The versions a service has loaded, by role (its /readyz)."""
    loaded = httpx.get(f"{url}/readyz", timeout=5).json()["loaded"]
    return {role: int(model["version"]) for role, model in loaded.items()}


def test_the_lifecycle_keeps_every_store_on_the_cluster_and_both_replicas_follow_a_release(
        cluster: Cluster, trained: dict[str, object], factory_batches: dict[str, Path]) -> None:
    env = cluster.settings_env()
    assert trained["ingest"]["status"] == "accepted", trained
    assert (trained["version"], trained["stage"]) == (1, "candidate"), trained
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"],
                      region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    stored = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="gradeline") for item in page.get("Contents", [])]
    assert any(key.startswith("dvc/") for key in stored)
    assert any(key.startswith("mlflow/") and key.endswith(".onnx") for key in stored)
    # The embedded stores' folders (made by `keys create` before `up`) stay empty, and no
    # SQLite database is anywhere in the home.
    assert not [p for p in (cluster.home / "mlflow").rglob("*") if p.is_file()]
    assert not [p for p in (cluster.home / "dvc-remote").rglob("*") if p.is_file()]
    assert not list(cluster.home.rglob("*.db"))

    photos = photos_of_batch(factory_batches["first"])
    keys = TrafficKeys(client=cluster.key)
    poll("both replicas serving version 1", lambda: all(
        _serving(cluster.replica(r)) == {"champion": 1} for r in ("serve-1", "serve-2")), 30)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("os.environ", {**os.environ, **env})
        uri = env["MLFLOW_TRACKING_URI"]
        first = get_version(uri, GRADER, 1)
        assert MlflowClient(uri).get_run(first.run_id).info.artifact_uri.startswith(
            "mlflow-artifacts:/")
        tags = {k: v for k, v in MlflowClient(uri).get_model_version(GRADER, "1").tags.items()
                if k.startswith(("onnx.", "gate.", "evaluation."))}
        challenger = register_candidate(uri, GRADER, first.source, first.run_id,
                                        first.data_version, "cluster-test", tags).version
    with Traffic(cluster.balancer, photos, "release", keys, clients=2) as traffic:
        promoted = cluster.run("promote", "--model", GRADER, "--version", str(challenger),
                               "--no-wait", "--params", str(cluster.params))
        cluster.run("approve", "--model", GRADER, "--version", str(challenger), "--by", "ada",
                    "--params", str(cluster.params))
        crowned = time.monotonic()
        for replica in ("serve-1", "serve-2"):
            poll(f"{replica} serving version {challenger}", lambda r=replica: _serving(
                cluster.replica(r)).get("champion") == challenger, 30)
        followed_s = time.monotonic() - crowned
    assert promoted["stage"] == "awaiting_approval", promoted
    assert followed_s <= 2 * REFRESH_S + 1.0
    assert traffic.figures.failures == []
    served_by = {line.split()[4] for line in
                 (cluster.home / "stack" / "balancer-access.log").read_text().splitlines()
                 if " POST /v1/grade 200 " in line}
    assert served_by == {cluster.replica(r).removeprefix("http://")
                         for r in ("serve-1", "serve-2")}

    answered = {str(answer["request_id"]) for answer in traffic.figures.answers}
    _poll_logged(cluster, answered)
    monitored = cluster.run("monitor", "--model", GRADER, "--window", "1h",
                            "--params", str(cluster.params))
    assert monitored["version"] == challenger
    assert monitored["window_size"] >= len(answered)

    _two_writers_log_at_once(env)


def _two_writers_log_at_once(env: dict[str, str]) -> None:
    """Two processes logging runs, metrics and artifacts to the cluster's MLflow at once: none
    lost, and no "database is locked"."""
    client_env = {**os.environ, **env}
    experiment = subprocess.run([sys.executable, "-c", "from mlflow import MlflowClient; "
                                 "print(MlflowClient().create_experiment('concurrent'))"],
                                env=client_env, capture_output=True, text=True, check=True)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, name, str(RUNS), str(STEPS)],
                                env=client_env, stderr=subprocess.PIPE, text=True)
               for name in ("worker-a", "worker-b")]
    finished = [writer.communicate(timeout=300) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], [err for _, err in finished]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("os.environ", client_env)  # the server's credentials
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])  # not an earlier test's global URI
        runs = client.search_runs([experiment.stdout.strip()], max_results=100)
        assert len(runs) == 2 * RUNS and {run.info.status for run in runs} == {"FINISHED"}
        assert all(len(client.get_metric_history(run.info.run_id, "loss")) == STEPS
                   for run in runs)
        notes = client.download_artifacts(runs[0].info.run_id, "notes.txt")
        assert Path(notes).read_text() == f"written by {runs[0].data.params['writer']}"


def test_a_replica_killed_under_traffic_loses_no_request(
        cluster: Cluster, trained: dict[str, object], factory_batches: dict[str, Path]) -> None:
    photos = photos_of_batch(factory_batches["first"])
    pid = int((cluster.home / "stack" / "serve-1.pid").read_text())
    traffic = Traffic(cluster.balancer, photos, "failover", TrafficKeys(client=cluster.key),
                      clients=4)
    with traffic:
        poll("traffic answered", lambda: len(traffic.figures.answers) >= 20, 60)
        os.killpg(pid, signal.SIGKILL)
        killed_at = len(traffic.figures.answers)
        poll("traffic after the kill", lambda: len(traffic.figures.answers) >= killed_at + 40,
             60)
    figures = traffic.figures
    assert len(figures.failures) <= traffic.clients, figures.failures  # only ones in flight
    assert figures.sent == len(figures.answers) + len(figures.failures)
    assert _serving(cluster.balancer)["champion"] >= 1  # the other replica answers alone
    _poll_logged(cluster, {str(answer["request_id"]) for answer in figures.answers})


def _poll_logged(cluster: Cluster, answered: set[str]) -> None:
    """Wait until every answered request is in the PostgreSQL prediction log (the replicas
    write it just after answering)."""
    uri = str(load_settings(home=cluster.home).prediction_log_uri)
    assert uri.startswith("postgresql+psycopg://")
    log = PredictionLog(uri)
    poll("every answer logged", lambda: answered <= set(log.window(embeddings=False)
                                                        ["request_id"]), 30)
