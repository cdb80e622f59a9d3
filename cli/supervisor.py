"""The local stack's processes: a Prefect server, the MLflow UI (with its basic-auth app) and a
process worker on loopback, each started in a session of its own (so stopping its process group
stops its children), waited for until it answers, and stopped again.

    stack = Stack(stack_folder(settings), prefect_port=4200, mlflow_port=5000, worker_name="w")
    start_stack(stack, settings, wait_s=240, say=print)
    stop_stack(stack, running_services(stack))

Each pid file and log lives under <home>/stack/, next to stack.json with the ports, which is how
`down`, `deploy` and a second `up` find what `up` started.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.settings import (
    GradelineSettings,
    stored_secret,
)
from model_registry.access import AUTH_APP, server_auth_env

POOL = "gradeline"
HOST = "127.0.0.1"
# Start order; `down` stops them in reverse, the worker first while its server still answers.
SERVICES = ("prefect-server", "mlflow", "worker")
# The cluster profile's (cli/cluster.py): the stores' servers first, the balancer last.
CLUSTER_SERVICES = ("postgres", "s3", *SERVICES, "serve-1", "serve-2", "balancer")
# Text of each service's command line: a pid file whose pid now belongs to some other program
# is never taken for the service (nor signalled).
_MARKERS = {"prefect-server": "prefect server start", "mlflow": "mlflow server",
            "worker": "prefect worker start", "postgres": "bin/postgres -D",
            "s3": "moto.server", "serve-1": " serve --host", "serve-2": " serve --host",
            "balancer": "nginx"}
STOP_GRACE_S = 10.0

class StackError(RuntimeError):
    """A service of the local stack did not start, or its port is taken."""


@dataclass(frozen=True)
class Stack:
    """Where one home's stack keeps its pids and logs, and the ports it listens on."""

    folder: Path
    prefect_port: int
    mlflow_port: int
    worker_name: str
    profile: str = "embedded"
    ports: dict[str, int] = field(default_factory=dict)  # the cluster's other services'
    postgres_folder: str | None = None  # the cluster's throwaway database, outside the home

    @property
    def services(self) -> tuple[str, ...]:
        """The services of this stack's profile, in start order."""
        return CLUSTER_SERVICES if self.profile == "cluster" else SERVICES

    @property
    def prefect_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}"

    @property
    def api_url(self) -> str:
        return f"{self.prefect_url}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def pool_url(self) -> str:
        return f"{self.prefect_url}/work-pools/work-pool/{POOL}"

    def api_auth(self) -> str:
        """The `user:password` the stack's Prefect server asks of every API client (made once,
        kept in the stack folder, mode 0600)."""
        return "gradeline:" + stored_secret(self.folder / "prefect-api.secret")

    def mlflow_admin_password(self) -> str:
        """The MLflow admin's password (made once, kept in the stack folder, mode 0600)."""
        return stored_secret(self.folder / "mlflow-admin.password")

    def pid_file(self, service: str) -> Path:
        return self.folder / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.folder / f"{service}.log"

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fields = {k: v for k, v in asdict(self).items() if k != "folder"}
        (self.folder / "stack.json").write_text(json.dumps(fields, indent=2))


def stack_folder(settings: GradelineSettings) -> Path:
    return settings.home / "stack"


def load_stack(folder: Path) -> Stack | None:
    """The stack last started from `folder`, or None when `up` never wrote one there."""
    try:
        fields = json.loads((folder / "stack.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return Stack(folder=folder, **fields)


# --- processes ---------------------------------------------------------------------------

def port_is_free(port: int) -> bool:
    """Whether nothing listens on `port` of 127.0.0.1 (a closing connection does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def is_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not: it is reaped when it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def running_pid(stack: Stack, service: str) -> int | None:
    """The pid of `service` when its pid file names a live process that is that service."""
    try:
        pid = int(stack.pid_file(service).read_text())
    except (FileNotFoundError, ValueError):
        return None
    command = _command_line(pid)
    if not is_alive(pid) or (command is not None and _MARKERS[service] not in command):
        return None
    return pid


def start_process(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    """Start `command` in the background in a new session, output to `log`; its pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return process.pid


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (empty where there is none): children
    that started sessions of their own, as the worker's flow runs do, leave its group."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _signal(pids: list[int], group: int, sig: signal.Signals) -> None:
    for target, send in [(group, os.killpg), *[(pid, os.kill) for pid in pids]]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(target, sig)


def stop_process(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM to the process group of `pid` and its descendants, SIGKILL to what is left after
    `grace_s` seconds. True when all ended on SIGTERM."""
    family = _descendants(pid)
    _signal(family, pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(is_alive(p) for p in [pid, *family]):
            return True
        time.sleep(0.2)
    _signal(family, pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(is_alive(p) for p in [pid, *family]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return False


# --- readiness ---------------------------------------------------------------------------

def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 5,
              auth: str | None = None) -> Any:
    """GET `url` (POST `body` as JSON when given), with basic `auth` (`user:password`) when
    given; the decoded JSON answer, or None if empty."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
    return json.loads(payload) if payload.strip() else None


def answers(url: str) -> bool:
    """Whether `url` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def worker_online(api_url: str, worker_name: str, auth: str | None) -> bool:
    """Whether the worker named `worker_name` reports ONLINE in pool `gradeline`."""
    try:
        workers = http_json(f"{api_url}/work_pools/{POOL}/workers/filter", {}, auth=auth)
    except (OSError, ValueError):
        return False
    return any(w["name"] == worker_name and w["status"] == "ONLINE" for w in workers or [])


def readiness_checks(stack: Stack) -> dict[str, Callable[[], bool]]:
    return {"prefect-server": lambda: answers(f"{stack.api_url}/health"),
            "mlflow": lambda: answers(f"{stack.mlflow_url}/health"),
            "worker": lambda: worker_online(stack.api_url, stack.worker_name, stack.api_auth())}


def wait_ready(stack: Stack, service: str, pid: int, deadline: float,
               ready: Callable[[], bool] | None = None) -> None:
    """Return once `service` answers (`ready`, by default its check above); StackError naming
    it and its log when its process exits or the deadline (time.monotonic()) passes first."""
    ready = ready or readiness_checks(stack)[service]
    log = stack.log_file(service)
    while not ready():
        if not is_alive(pid):
            raise StackError(f"{service} exited before it answered; see {log}")
        if time.monotonic() > deadline:
            raise StackError(f"{service} did not answer in time; see {log}")
        time.sleep(0.5)


# --- the stack ---------------------------------------------------------------------------

def service_commands(stack: Stack, settings: GradelineSettings) -> dict[str, list[str]]:
    """The command line of each service, with the interpreter running this one."""
    prefect = [sys.executable, "-m", "prefect"]
    return {
        "prefect-server": [*prefect, "server", "start", "--host", HOST,
                           "--port", str(stack.prefect_port)],
        # One web worker: a local UI for a few reviewers, on a machine shared with training.
        # The store, artifact root and auth secrets come from its environment (launch); with
        # the basic-auth app, reviewers sign in (gradeline reviewers add).
        "mlflow": [sys.executable, "-m", "mlflow", "server", "--host", HOST,
                   "--port", str(stack.mlflow_port), "--workers", "1",
                   "--app-name", AUTH_APP],
        # --type process creates the pool when it is missing.
        "worker": [*prefect, "worker", "start", "--pool", POOL, "--type", "process",
                   "--name", stack.worker_name],
    }


def base_env(settings: GradelineSettings) -> dict[str, str]:
    """This process's environment with the home's settings: what a service without secrets
    of the stack gets."""
    return {**os.environ, **settings.service_env()}


def service_envs(stack: Stack, settings: GradelineSettings,
                 mlflow_users_uri: str | None = None) -> dict[str, dict[str, str]]:
    """Each service's environment: `base_env`, and only what that service needs of the stack's
    secrets (the Prefect server its auth string, the worker and its flow runs the server's URL
    and that string, MLflow its store and auth app, its users in `mlflow_users_uri`)."""
    base = base_env(settings)
    return {"prefect-server": {**base, "PREFECT_SERVER_API_AUTH_STRING": stack.api_auth()},
            "mlflow": {**base, **settings.mlflow_server_env(), **server_auth_env(
                stack.folder, stack.mlflow_admin_password(),
                stored_secret(stack.folder / "mlflow-csrf.secret"), mlflow_users_uri)},
            "worker": {**base, **prefect_client_env(stack)}}


def prefect_client_env(stack: Stack) -> dict[str, str]:
    """What a Prefect client of the stack's server needs: its URL and auth string."""
    return {"PREFECT_API_URL": stack.api_url, "PREFECT_API_AUTH_STRING": stack.api_auth()}


def prefect_api(settings: GradelineSettings) -> dict[str, str] | None:
    """The Prefect API this home's commands talk to, as client environment: PREFECT_API_URL
    (with PREFECT_API_AUTH_STRING) when set, else the server `gradeline up` started; None when
    there is neither."""
    if url := settings.prefect_api_url:
        auth = settings.prefect_api_auth_string
        return {"PREFECT_API_URL": url.rstrip("/"),
                **({"PREFECT_API_AUTH_STRING": auth.get_secret_value()} if auth else {})}
    stack = load_stack(stack_folder(settings))
    return None if stack is None else prefect_client_env(stack)


def running_services(stack: Stack) -> dict[str, int]:
    """The services of `stack` that run now, with their pids."""
    pids = {service: running_pid(stack, service) for service in stack.services}
    return {service: pid for service, pid in pids.items() if pid is not None}


def start_stack(stack: Stack, settings: GradelineSettings, wait_s: float,
                say: Callable[[str], None]) -> None:
    """Start the three services and wait until each answers; on failure stop what started and
    raise StackError naming the service that did not come up."""
    for port, option in ((stack.prefect_port, "--prefect-port"),
                         (stack.mlflow_port, "--mlflow-port")):
        if not port_is_free(port):
            raise StackError(f"port {port} on {HOST} is taken by another program; "
                             f"choose another with {option}")
    settings.ensure_dirs()
    stack.save()
    commands, envs = service_commands(stack, settings), service_envs(stack, settings)
    deadline = time.monotonic() + wait_s
    started: dict[str, int] = {}

    def launch(service: str) -> None:
        started[service] = start_process(commands[service], envs[service],
                                         stack.log_file(service), cwd=stack.folder)
        stack.pid_file(service).write_text(str(started[service]))
        say(f"starting {service} (log: {stack.log_file(service)})")

    try:
        launch("prefect-server")
        launch("mlflow")
        wait_ready(stack, "prefect-server", started["prefect-server"], deadline)
        launch("worker")  # it registers with the server, so only once the server answers
        wait_ready(stack, "mlflow", started["mlflow"], deadline)
        wait_ready(stack, "worker", started["worker"], deadline)
    except BaseException:
        stop_stack(stack, started)
        raise


def stop_stack(stack: Stack, pids: dict[str, int]) -> dict[str, bool]:
    """Stop the given services, worker first, and remove their pid files; for each, whether it
    ended on SIGTERM (False: it had to be killed)."""
    stopped = {}
    for service in reversed(stack.services):
        if service in pids:
            stopped[service] = stop_process(pids[service])
        stack.pid_file(service).unlink(missing_ok=True)
    return stopped
