"""Every piece of state on shared engines, as a cluster deployment keeps it (infra/): the DVC
remote and MLflow's artifacts on S3 (moto on loopback), MLflow's tracking store and registry
and the prediction log on PostgreSQL (a throwaway server, tests/postgres.py). A batch is
ingested, a tiny grader trained, registered and evaluated on them, and nothing lands in the
home folder's embedded stores. Budgets are tiny (tiny_params.yaml)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from mlflow import MlflowClient

from components.predlog import PredictionLog
from components.settings import load_settings
from flows.evaluate import run_evaluate
from flows.ingest import run_ingest
from flows.train import run_train
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = Path(__file__).with_name("tiny_params.yaml")
BUCKET = "gradeline"


def test_ingest_train_and_evaluate_keep_their_state_on_postgresql_and_s3(
        home: Path, factory_batches: dict[str, Path], s3_endpoint: str,
        postgres: PostgresServer) -> None:
    tracking = postgres.create_database(f"mlflow_{uuid.uuid4().hex}")
    predictions = postgres.create_database(f"predictions_{uuid.uuid4().hex}")
    os.environ.update({
        "GRADELINE_S3_ENDPOINT_URL": s3_endpoint, "GRADELINE_AWS_REGION": "us-east-1",
        "GRADELINE_AWS_ACCESS_KEY_ID": "test-key", "GRADELINE_AWS_SECRET_ACCESS_KEY": "secret",
        "GRADELINE_DVC_REMOTE": f"s3://{BUCKET}/dvc",
        "GRADELINE_MLFLOW_TRACKING_URI": tracking,
        "GRADELINE_MLFLOW_ARTIFACT_ROOT": f"s3://{BUCKET}/mlflow",
        "GRADELINE_PREDICTION_LOG_URI": predictions})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="test-key", aws_secret_access_key="secret")
    s3.create_bucket(Bucket=BUCKET)

    ingested = run_ingest(load_settings(), str(factory_batches["first"]), "grade")
    trained = run_train(load_settings(), "grade", params_file=str(TINY))
    evaluated = run_evaluate(load_settings(), "card-grader", 1, str(TINY))

    assert ingested.status == "accepted", ingested.message
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    version = client.get_model_version("card-grader", "1")
    assert version.tags["data_version"] == ingested.data_version
    assert version.tags["stage"] == evaluated["stage"]
    assert client.get_run(trained.run_id).info.artifact_uri.startswith(f"s3://{BUCKET}/mlflow/")
    stored = {item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
              for item in page.get("Contents", [])}
    assert any(key.startswith("dvc/") for key in stored)
    assert any(key.startswith("mlflow/") and key.endswith(".onnx") for key in stored)
    assert not (home / "mlflow").exists() and not (home / "dvc-remote").exists()
    assert PredictionLog(predictions).window().empty  # the log's tables are on PostgreSQL
