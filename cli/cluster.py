"""The cluster profile rehearsed on one machine: `gradeline up --profile cluster` starts, on
loopback, every shared server a cluster gives Gradeline, and points the home at them.

    stack = Stack(folder, prefect_port=4200, mlflow_port=5000, worker_name="w",
                  profile="cluster", ports={"balancer": 8080})
    start_cluster(stack, settings, wait_s=300, say=print)   # then every command uses it
    forget_cluster(stack)                                    # after stop_stack: data gone

The services, in start order: a throwaway PostgreSQL (databases mlflow, mlflow_auth, prefect,
predictions), moto's S3 server (bucket `gradeline`: the DVC remote and MLflow's artifacts), the
Prefect server on PostgreSQL, MLflow's tracking server with two workers on PostgreSQL serving
artifacts from S3 (with the basic-auth app), a process worker, two `gradeline serve` replicas
on the PostgreSQL prediction log, and nginx balancing between them (a replica that refuses a
connection or answers 502/503 is skipped for the next). What the home's commands need to use
them is written to <home>/stack/cluster.env (mode 0600), which `load_settings` reads: the
`cluster` profile of components/settings.py. `gradeline down` stops them, deletes that file and
the database: this is a rehearsal, its data does not outlive it (moto keeps S3 in memory).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import botocore.exceptions

from cli.postgres import PostgresServer, new_cluster, server_command
from cli.supervisor import (
    HOST,
    Stack,
    StackError,
    answers,
    base_env,
    port_is_free,
    service_commands,
    service_envs,
    start_process,
    stop_stack,
    wait_ready,
)
from components.serving.loopback import free_port
from components.settings import CLUSTER_ENV_FILE, GradelineSettings, load_settings, stored_secret
from model_registry.access import ADMIN

BUCKET = "gradeline"
DATABASES = ("mlflow", "mlflow_auth", "prefect", "predictions")
REPLICAS = ("serve-1", "serve-2")
MLFLOW_WORKERS = 2
S3_KEY_ID = "gradeline"
S3_REGION = "us-east-1"
GRADELINE = Path(sys.executable).parent / "gradeline"


def cluster_stack(folder: Path, prefect_port: int, mlflow_port: int, balancer_port: int,
                  worker_name: str) -> Stack:
    """A cluster stack: the given public ports, free ones for the services behind them."""
    ports = {"balancer": balancer_port, "postgres": free_port(), "s3": free_port(),
             **{replica: free_port() for replica in REPLICAS}}
    return Stack(folder, prefect_port, mlflow_port, worker_name, profile="cluster", ports=ports)


def balancer_url(stack: Stack) -> str:
    return f"http://{HOST}:{stack.ports['balancer']}"


def s3_url(stack: Stack) -> str:
    return f"http://{HOST}:{stack.ports['s3']}"


def cluster_env(stack: Stack, postgres: PostgresServer) -> dict[str, str]:
    """The settings that put a home's every store on the stack's servers (cluster profile)."""
    return {
        "GRADELINE_PROFILE": "cluster",
        "GRADELINE_MLFLOW_TRACKING_URI": stack.mlflow_url,
        "GRADELINE_MLFLOW_TRACKING_USERNAME": ADMIN,
        "GRADELINE_MLFLOW_TRACKING_PASSWORD": stack.mlflow_admin_password(),
        "GRADELINE_PREFECT_API_URL": stack.api_url,
        "GRADELINE_PREFECT_API_AUTH_STRING": stack.api_auth(),
        "GRADELINE_PREDICTION_LOG_URI": postgres.uri("predictions"),
        "GRADELINE_DVC_REMOTE": f"s3://{BUCKET}/dvc",
        "GRADELINE_S3_ENDPOINT_URL": s3_url(stack),
        "GRADELINE_AWS_REGION": S3_REGION,
        "GRADELINE_AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "GRADELINE_AWS_SECRET_ACCESS_KEY": stored_secret(stack.folder / "s3.secret"),
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def balancer_config(folder: Path, port: int, replica_ports: list[int],
                    max_body_bytes: int) -> str:
    """nginx's configuration, its files in `folder`, listening on `port`: one upstream of the
    replicas, a replica that refuses or answers 502/503 skipped for the next (a request it never
    took is retried there, POSTs too), bodies and answers kept in memory (the workers may not
    reach `folder`)."""
    replicas = "\n".join(f"    server {HOST}:{replica} max_fails=1 fail_timeout=5s;"
                         for replica in replica_ports)
    return f"""worker_processes 1;
pid {folder}/balancer.pid;
error_log {folder}/balancer-error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format replicas '$time_iso8601 $request_method $uri $status $upstream_addr '
                      '$upstream_status $request_time $http_x_request_id';
  access_log {folder}/balancer-access.log replicas;
  client_max_body_size {max_body_bytes};
  client_body_buffer_size {max_body_bytes};
  proxy_max_temp_file_size 0;
  upstream replicas {{
{replicas}
    keepalive 16;
    keepalive_timeout 4s;  # under uvicorn's 5 s: nginx never reuses one a replica is closing
  }}
  server {{
    listen {HOST}:{port};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


def balancer_command(folder: Path) -> list[str]:
    """nginx in the foreground on `folder`/balancer.conf."""
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(folder),
            "-c", str(folder / "balancer.conf"), "-g", "daemon off;"]

def _commands(stack: Stack, settings: GradelineSettings,
              params: Path | None) -> dict[str, list[str]]:
    """The command lines after PostgreSQL's: the embedded stack's (cli/supervisor.py) with
    MLflow scaled out and serving artifacts from S3, then S3, the replicas (on `params`) and
    nginx."""
    commands = service_commands(stack, settings)
    mlflow = commands["mlflow"]
    mlflow[mlflow.index("--workers") + 1] = str(MLFLOW_WORKERS)
    mlflow += ["--serve-artifacts", "--artifacts-destination", f"s3://{BUCKET}/mlflow"]
    return {"s3": [sys.executable, "-m", "moto.server", "-H", HOST,
                   "-p", str(stack.ports["s3"])],
            **commands,
            **{replica: [str(GRADELINE), "--home", str(settings.home), "serve", "--host", HOST,
                         "--port", str(stack.ports[replica]),
                         *(["--params", str(params)] if params else [])]
                for replica in REPLICAS},
            "balancer": balancer_command(stack.folder)}


def _envs(stack: Stack, settings: GradelineSettings,
          postgres: PostgresServer) -> dict[str, dict[str, str]]:
    """Each service's environment: the embedded stack's (cli/supervisor.py) on the cluster's
    settings, with the Prefect server and MLflow moved onto PostgreSQL."""
    envs = service_envs(stack, settings, mlflow_users_uri=postgres.uri("mlflow_auth"))
    plain = base_env(settings)
    envs["prefect-server"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres.uri(
        "prefect").replace("+psycopg", "+asyncpg")
    envs["mlflow"]["MLFLOW_BACKEND_STORE_URI"] = postgres.uri("mlflow")
    return {"s3": plain, **envs, "balancer": plain,
            **{replica: envs["worker"] for replica in REPLICAS}}


def _bucket_made(stack: Stack, settings: GradelineSettings) -> bool:
    """Create the bucket; False while the S3 server does not answer yet."""
    secret = settings.aws_secret_access_key
    s3 = boto3.client("s3", endpoint_url=s3_url(stack), region_name=S3_REGION,
                      aws_access_key_id=S3_KEY_ID,
                      aws_secret_access_key=secret.get_secret_value() if secret else None)
    try:
        s3.create_bucket(Bucket=BUCKET)
    except (botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError):
        return False
    return True


def start_cluster(stack: Stack, settings: GradelineSettings, params: Path | None,
                  wait_s: float, say: Callable[[str], None]) -> GradelineSettings:
    """Start every service of the cluster stack and wait until each answers (the replicas and
    the balancer's body limit on `params`, default the project's params.yaml); the home's
    settings on them. On failure stop what started, forget the cluster and raise StackError
    naming the service that did not come up."""
    from components.params import load_params  # the serving package is heavy: only for `up`
    from components.serving.keys import KeyStore
    from components.serving.params import ServeParams

    for port, option in ((stack.prefect_port, "--prefect-port"),
                         (stack.mlflow_port, "--mlflow-port"),
                         (stack.ports["balancer"], "--port")):
        if not port_is_free(port):
            raise StackError(f"port {port} on {HOST} is taken by another program; "
                             f"choose another with {option}")
    if not KeyStore(settings.keys_file).active():
        raise StackError(f"no active API key in {settings.keys_file}: the serve replicas answer "
                         "only key holders; create one first with `gradeline keys create "
                         "--name NAME --role client`")
    if shutil.which("nginx") is None:
        raise StackError("nginx is not installed: the replicas' load balancer is Debian's "
                         "nginx (apt-get install nginx-light; `make test` installs it)")
    postgres_folder = new_cluster()
    stack = dataclasses.replace(stack, postgres_folder=str(postgres_folder))
    stack.save()
    serve = load_params("serve", ServeParams, params)
    _write_private(stack.folder / "balancer.conf", balancer_config(
        stack.folder, stack.ports["balancer"], [stack.ports[r] for r in REPLICAS],
        serve.max_upload_bytes))
    started: dict[str, int] = {}
    try:
        return _start(stack, settings, params, time.monotonic() + wait_s, started, say)
    except BaseException:
        stop_stack(stack, started)
        forget_cluster(stack)
        raise


def _start(stack: Stack, settings: GradelineSettings, params: Path | None, deadline: float,
           started: dict[str, int], say: Callable[[str], None]) -> GradelineSettings:
    """Start the services in order, each once what it needs answers (`started` gains each
    pid); the home's settings on them."""
    postgres = PostgresServer(stack.ports["postgres"])
    commands = {"postgres": server_command(Path(str(stack.postgres_folder)), postgres.port)}
    envs = {"postgres": base_env(settings)}

    def launch(service: str) -> None:
        started[service] = start_process(commands[service], envs[service],
                                         stack.log_file(service), cwd=stack.folder)
        stack.pid_file(service).write_text(str(started[service]))
        say(f"starting {service} (log: {stack.log_file(service)})")

    def ready(service: str, check: Callable[[], bool] | None = None) -> None:
        wait_ready(stack, service, started[service], deadline, check)

    launch("postgres")
    ready("postgres", postgres.answers)
    for database in DATABASES:
        postgres.create_database(database)
    _write_private(settings.home / CLUSTER_ENV_FILE, "".join(
        f"{key}={value}\n" for key, value in cluster_env(stack, postgres).items()))
    cluster = load_settings(home=settings.home)
    commands.update(_commands(stack, cluster, params))
    envs.update(_envs(stack, cluster, postgres))
    launch("s3")
    ready("s3", lambda: _bucket_made(stack, cluster))
    launch("prefect-server")
    launch("mlflow")
    ready("prefect-server")
    launch("worker")
    ready("mlflow")
    ready("worker")
    for replica in REPLICAS:
        launch(replica)
    for replica in REPLICAS:
        ready(replica, lambda r=replica: answers(f"http://{HOST}:{stack.ports[r]}/healthz"))
    launch("balancer")
    ready("balancer", lambda: answers(f"{balancer_url(stack)}/healthz"))
    return cluster


def forget_cluster(stack: Stack) -> None:
    """Delete the home's cluster.env and the throwaway database (once its server stopped)."""
    (stack.folder / CLUSTER_ENV_FILE.name).unlink(missing_ok=True)
    if stack.postgres_folder:
        shutil.rmtree(stack.postgres_folder, ignore_errors=True)
