"""The commands of the local stack and the deployments of prefect.yaml.

    gradeline up [--profile embedded|cluster] [--prefect-port 4200] [--mlflow-port 5000]
                 [--serve-port 8080] [--wait 300]
    gradeline deploy [--project DIR] [--json]
    gradeline down

The processes themselves are `supervisor.py`'s (and `cluster.py`'s for the cluster profile).
Mounted by the main CLI with `register(app)`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml

from cli.cluster import balancer_url, cluster_stack, forget_cluster, start_cluster
from cli.common import ParamsOption, fail, say, show
from cli.supervisor import (
    POOL,
    Stack,
    StackError,
    answers,
    http_json,
    load_stack,
    prefect_api,
    running_services,
    stack_folder,
    start_stack,
    stop_stack,
)
from components.settings import (
    GradelineSettings,
    find_project_root,
    load_settings,
)

# --- deployments -------------------------------------------------------------------------

def deploy_all(project: Path, api: dict[str, str], settings: GradelineSettings,
               log: Path) -> None:
    """`prefect --no-prompt deploy --all` in `project` against the API `api` (client
    environment), output to `log`; StackError with the end of the output when it fails."""
    env = {**os.environ, **settings.service_env(), **api}
    with log.open("wb") as out:
        result = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy",
                                 "--all"], cwd=project, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise StackError(f"prefect deploy failed (exit {result.returncode}), full log in "
                         f"{log}:\n{tail}")


def describe_deployments(api: dict[str, str], names: list[str]) -> list[dict[str, Any]]:
    """Each named deployment as registered on the server: flow, schedules and event triggers
    (the automations it owns)."""
    api_url, auth = api["PREFECT_API_URL"], api.get("PREFECT_API_AUTH_STRING")
    deployments = http_json(f"{api_url}/deployments/filter",
                        {"deployments": {"name": {"any_": names}}, "limit": 200}, auth=auth)
    flows = {f["id"]: f["name"]
             for f in http_json(f"{api_url}/flows/filter", {"limit": 200}, auth=auth)}
    automations = http_json(f"{api_url}/automations/filter", {"limit": 200}, auth=auth)
    described = []
    for deployment in sorted(deployments, key=lambda d: names.index(d["name"])):
        schedules = [_schedule_text(s["schedule"]) for s in deployment["schedules"]]
        triggers = [{"automation": a["name"], "expect": sorted(a["trigger"]["expect"]),
                     "within_s": a["trigger"]["within"], "parameters": action["parameters"]}
                    for a in automations for action in a["actions"]
                    if action.get("deployment_id") == deployment["id"]]
        described.append({"name": deployment["name"], "id": deployment["id"],
                          "flow": flows.get(deployment["flow_id"]),
                          "entrypoint": deployment["entrypoint"],
                          "work_pool": deployment["work_pool_name"],
                          "schedules": schedules, "triggers": triggers})
    return described


def _schedule_text(schedule: dict[str, Any]) -> str:
    if "cron" in schedule:
        return f"cron {schedule['cron']} ({schedule.get('timezone') or 'UTC'})"
    if "interval" in schedule:
        return f"every {schedule['interval']:g} s"
    return f"rrule {schedule.get('rrule')}"


def _trigger_text(trigger: dict[str, Any]) -> str:
    text = f"on {', '.join(trigger['expect'])}"
    return text + (f" (once per {trigger['within_s']:g} s)" if trigger["within_s"] else "")


def deployment_names(project: Path) -> list[str]:
    """Names of the deployments declared in the project's prefect.yaml, in order."""
    config = yaml.safe_load((project / "prefect.yaml").read_text()) or {}
    return [d["name"] for d in config.get("deployments") or [] if d.get("name")]


# --- commands ----------------------------------------------------------------------------

def _print_urls(stack: Stack) -> None:
    typer.echo(f"Prefect UI:  {stack.prefect_url}")
    typer.echo(f"MLflow UI:   {stack.mlflow_url}")
    typer.echo(f"worker pool: {stack.pool_url} (pool {POOL!r}, worker {stack.worker_name!r})")
    if stack.profile == "cluster":
        typer.echo(f"grading API: {balancer_url(stack)} (nginx before two replicas)")
        typer.echo(f"every command on this home now uses these servers "
                   f"({stack.folder / 'cluster.env'})")
    typer.echo("stop with `gradeline down`; register the deployments with `gradeline deploy`")


def up(
    profile: Annotated[Literal["embedded", "cluster"], typer.Option(
        help="embedded: Prefect, the MLflow UI and a worker on this home's files; cluster: "
             "also PostgreSQL, S3 (moto), two serve replicas behind nginx, and every store "
             "moved onto them.")] = "embedded",
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    serve_port: Annotated[int, typer.Option(
        help="Port of the load balancer before the serve replicas (cluster profile).")] = 8080,
    wait: Annotated[float, typer.Option(help="Seconds to wait for every service to answer.")]
    = 300,
    params: ParamsOption = None,
) -> None:
    """Start the local stack in the background on 127.0.0.1 and print its URLs: a Prefect
    server, the MLflow UI and a process worker (pool `gradeline`) on this home's state, or with
    `--profile cluster` the shared servers a cluster gives Gradeline (cli/cluster.py)."""
    settings = load_settings()
    folder = stack_folder(settings)
    current = load_stack(folder)
    running = running_services(current) if current else {}
    if current and len(running) == len(current.services):
        typer.echo(f"the {current.profile} stack is already up")
        _print_urls(current)
        return
    if running:
        missing = ", ".join(f"{s} (log: {current.log_file(s)})"
                            for s in current.services if s not in running)
        raise fail(f"the stack is partly up: {missing} not running; "
                    f"run `gradeline down`, then `gradeline up`")
    worker = f"gradeline-{os.getpid()}"
    try:
        if profile == "cluster":
            stack = cluster_stack(folder, prefect_port, mlflow_port, serve_port, worker)
            project_params = find_project_root() / "params.yaml"
            start_cluster(stack, settings, params or (
                project_params if project_params.is_file() else None), wait, say)
        else:
            stack = Stack(folder, prefect_port, mlflow_port, worker_name=worker)
            start_stack(stack, settings, wait, say)
    except StackError as error:
        raise fail(str(error)) from None
    _print_urls(load_stack(folder) or stack)


def down() -> None:
    """Stop what `gradeline up` started; after the cluster profile, delete its throwaway
    database and the home's cluster.env."""
    stack = load_stack(stack_folder(load_settings()))
    if stack is None:
        typer.echo("nothing to stop: `gradeline up` never ran with this home")
        return
    running = running_services(stack)
    stopped = stop_stack(stack, running)  # also clears the pid files of services that died
    if stack.profile == "cluster":
        forget_cluster(stack)
    if not running:
        typer.echo("nothing to stop: the stack is not running")
    for service, on_term in stopped.items():
        typer.echo(f"stopped {service} (pid {running[service]})"
                   + ("" if on_term else ", killed after it ignored SIGTERM"))
    if stack.profile == "cluster":
        typer.echo("deleted the cluster's database and cluster.env: this home's commands use "
                   "its embedded stores again")


def deploy(
    project: Annotated[Path | None, typer.Option(
        help="Folder with prefect.yaml and the flows; default the project root.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
    = False,
) -> None:
    """Register every deployment of prefect.yaml (schedules and event triggers) on the running
    Prefect server: PREFECT_API_URL when set, else the one `gradeline up` started."""
    settings = load_settings()
    project = (project or find_project_root()).resolve()
    if not (project / "prefect.yaml").is_file():
        raise fail(f"{project} has no prefect.yaml")
    api = prefect_api(settings)
    if api is None or not answers(f"{api['PREFECT_API_URL']}/health"):
        where = f"at {api['PREFECT_API_URL']}" if api else "(none was started here)"
        raise fail(f"no Prefect server answers {where}; start one with `gradeline up`")
    log = stack_folder(settings) / "deploy.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"deploying {project / 'prefect.yaml'} to {api['PREFECT_API_URL']} (log: {log})")
    try:
        deploy_all(project, api, settings, log)
    except StackError as error:
        raise fail(str(error)) from None
    described = describe_deployments(api, deployment_names(project))
    show(described, as_json, (
        f"{d['name']:<20} {d['entrypoint']:<40} "
        + ("; ".join(d["schedules"] + [_trigger_text(t) for t in d["triggers"]]) or "manual")
        for d in described))


def register(app: typer.Typer) -> None:
    """Add the stack commands to the main CLI."""
    for command in (up, down, deploy):
        app.command(command.__name__)(command)
