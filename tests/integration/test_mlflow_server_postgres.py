"""MLflow's tracking server as a cluster runs it (infra/): several workers on a PostgreSQL
store (a throwaway server, tests/postgres.py), artifacts proxied to S3 (moto). Two processes
logging runs, metrics and artifacts to it at once through HTTP lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from mlflow import MlflowClient

from components.serving.loopback import free_port, wait_until_up
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "gradeline"
RUNS, STEPS = 10, 20  # per writer
_WRITER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("concurrent").experiment_id
for index in range(int(sys.argv[3])):
    run = client.create_run(experiment, run_name=f"{sys.argv[2]}-{index}").info.run_id
    client.log_param(run, "writer", sys.argv[2])
    for step in range(int(sys.argv[4])):
        client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
    client.log_text(run, f"written by {sys.argv[2]}", "notes.txt")
    client.set_terminated(run)
"""


@pytest.fixture()
def mlflow_server(tmp_path: Path, postgres: PostgresServer, s3_endpoint: str) -> Iterator[str]:
    """`mlflow server` with two workers on a new PostgreSQL database, artifacts to S3."""
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="test-key",
                 aws_secret_access_key="secret").create_bucket(Bucket=BUCKET)
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (tmp_path / "mlflow.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--backend-store-uri",
             postgres.create_database(f"mlflow_{uuid.uuid4().hex}"), "--serve-artifacts",
             "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", lambda: server.poll() is None, timeout=180)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def test_two_processes_logging_at_once_lose_nothing(mlflow_server: str) -> None:
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment("concurrent")
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, mlflow_server, name, str(RUNS),
                                 str(STEPS)], stderr=subprocess.PIPE, text=True)
               for name in ("worker-a", "worker-b")]
    finished = [writer.communicate(timeout=300) for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], [err for _, err in finished]
    runs = client.search_runs([experiment], max_results=100)
    assert len(runs) == 2 * RUNS and {run.info.status for run in runs} == {"FINISHED"}
    assert all(len(client.get_metric_history(run.info.run_id, "loss")) == STEPS for run in runs)
    assert client.get_experiment(experiment).artifact_location.startswith("mlflow-artifacts:")
    notes = client.download_artifacts(runs[0].info.run_id, "notes.txt")
    assert Path(notes).read_text() == f"written by {runs[0].data.params['writer']}"
