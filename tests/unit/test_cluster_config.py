"""What `gradeline up --profile cluster` writes before it starts anything: nginx's
configuration (checked by nginx itself) and the home's cluster.env (read back as the cluster
profile's settings). The stack itself runs in tests/integration/test_cluster.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cli.cluster import balancer_config, cluster_env, cluster_stack
from cli.postgres import PostgresServer
from components.settings import CLUSTER_ENV_FILE, load_settings


def test_nginx_accepts_the_balancer_configuration(tmp_path: Path) -> None:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (`make test` installs Debian's nginx-light)")
    (tmp_path / "balancer.conf").write_text(balancer_config(tmp_path, 18080, [18081, 18082],
                                                            20_000_000))

    checked = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c",
                              str(tmp_path / "balancer.conf")], capture_output=True, text=True)

    assert checked.returncode == 0, checked.stderr
    assert "server 127.0.0.1:18081" in (tmp_path / "balancer.conf").read_text()


def test_the_cluster_env_file_is_a_complete_cluster_profile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    home = tmp_path / "home"
    stack = cluster_stack(home / "stack", 14200, 15000, 18080, "worker")
    env = cluster_env(stack, PostgresServer(stack.ports["postgres"]))
    (home / CLUSTER_ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    settings = load_settings(home=home)  # validated as the cluster profile

    assert settings.profile == "cluster"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:15000"
    assert settings.prefect_api_url == "http://127.0.0.1:14200/api"
    assert settings.prediction_log_uri.endswith(f":{stack.ports['postgres']}/predictions")
    assert settings.service_env()["MLFLOW_TRACKING_PASSWORD"] == stack.mlflow_admin_password()
    assert (home / "stack" / "s3.secret").stat().st_mode & 0o077 == 0
