"""The deployment files in infra/ and the Dockerfile, checked offline: every Kubernetes object
the kustomizations render (and the Prefect work pool's Job) validates against the Kubernetes
schemas, every environment variable they set is one the code or the server it is given to
reads, every command line parses with that program's own parser, and ports and probes are the
ones the service listens on and answers. A renamed setting or route would otherwise break a
cluster deployment that no other test runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.credentials
import kubernetes_validate
import mlflow.cli
import mlflow.environment_variables
import prefect.settings
import pytest
import typer.main
import yaml
from prefect.utilities.templating import apply_values

from cli.main import app as gradeline_cli
from components.settings import GradelineSettings, load_settings

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
KUSTOMIZATIONS = ("k8s/overlays/local", "k8s/overlays/production", "k8s/jobs/train-grader")
KUBERNETES_VERSION = "1.32"  # the oldest minor still supported upstream when this was written
SERVE_PORT = int(yaml.safe_load((ROOT / "params.yaml").read_text())["serve"]["port"])
MLFLOW_PORT, PREFECT_PORT = 5000, 4200  # what `gradeline up` uses on loopback (cli/stack.py)


def _render(kustomization: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomizations cannot be rendered here")
    rendered = subprocess.run([kubectl, "kustomize", str(INFRA / kustomization)],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def _raw_documents() -> list[dict]:
    """Every object written out in infra/k8s and infra/prometheus, unrendered (what kubectl
    would be given)."""
    documents = []
    for path in sorted([*(INFRA / "k8s").rglob("*.yaml"), *(INFRA / "prometheus").glob("*.yaml")]):
        if path.name != "kustomization.yaml":
            documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def _work_pool_job(values: dict[str, object]) -> dict:
    """The Job a Kubernetes work pool of infra/prefect would create, its variables set to
    their defaults and `values`, as Prefect's own templating fills it."""
    template = json.loads((INFRA / "prefect" / "kubernetes-work-pool.json").read_text())
    defaults = {name: spec["default"] for name, spec in
                template["variables"]["properties"].items() if "default" in spec}
    return apply_values(template["job_configuration"]["job_manifest"],
                        {**defaults, "name": "train-grader", **values})


def _containers(document: dict) -> Iterator[dict]:
    spec = document.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    yield from pod.get("containers", [])


def _parse(program: Any, args: list[str]) -> None:
    """Parse `args` as `program`'s click parser would (Typer's is a copy of click's), down to
    the subcommand's own options, without running anything: an unknown command or option
    raises a usage error."""
    context = program.context_class(program, info_name=program.name)
    command, remaining = program, list(args)
    while hasattr(command, "get_command"):  # a group: the next word names a command
        name, *remaining = remaining
        found = command.get_command(context, name)
        assert found is not None, f"no command {name!r} in {args}"
        command = found
        context = command.context_class(command, info_name=name, parent=context)
    command.make_context(name, remaining, parent=context.parent)


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _gradeline_services() -> list[dict]:
    """The compose services that run the Gradeline image (not PostgreSQL or MinIO)."""
    return [service for service in _compose()["services"].values()
            if service["image"] == "gradeline:dev"]


def _environment_names() -> set[str]:
    """Every environment variable a manifest or the compose file sets (the work pool takes
    its own from the settings ConfigMap and the Job's `env` variable)."""
    names = set()
    for document in _raw_documents():
        if document["kind"] == "ConfigMap":
            names |= set(document["data"])
        for container in _containers(document):
            names |= {variable["name"] for variable in container.get("env", [])}
    for service in _gradeline_services():
        names |= set(service.get("environment", {}))
    return names


def _unread(names: set[str]) -> list[str]:
    """The environment variables among `names` that neither Gradeline's settings, MLflow
    (client or server), Prefect nor the AWS clients read."""
    service_env = load_settings(home=Path("/nonexistent")).service_env()
    mlflow_server = {parameter.envvar for parameter in mlflow.cli.cli.commands["server"].params}
    aws = {botocore.credentials.EnvProvider.ACCESS_KEY, botocore.credentials.EnvProvider.SECRET_KEY}

    def read(name: str) -> bool:
        return (name.startswith("GRADELINE_")
                and name.removeprefix("GRADELINE_").lower() in GradelineSettings.model_fields
                or name in service_env or name in mlflow_server or name in aws
                or hasattr(mlflow.environment_variables, name)
                or name.startswith("PREFECT_") and hasattr(prefect.settings, name))

    return [name for name in sorted(names) if not read(name)]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid_kubernetes(kustomization: str) -> None:
    documents = _render(kustomization)

    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert document["metadata"].get("namespace", "gradeline") == "gradeline"


def test_objects_validate_unrendered_too() -> None:
    """Without kubectl the objects still validate one by one (images are placeholders)."""
    documents = _raw_documents()

    assert {d["kind"] for d in documents} >= {"Deployment", "Service", "HorizontalPodAutoscaler",
                                               "PodDisruptionBudget", "ConfigMap", "Job",
                                               "PersistentVolumeClaim", "Namespace"}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_production_runs_three_spread_replicas_that_a_drain_cannot_take_below_two() -> None:
    documents = {(d["kind"], d["metadata"]["name"]): d
                 for d in _render("k8s/overlays/production")}
    serve = documents[("Deployment", "gradeline-serve")]
    budget = documents[("PodDisruptionBudget", "gradeline-serve")]
    autoscaler = documents[("HorizontalPodAutoscaler", "gradeline-serve")]

    assert serve["spec"]["replicas"] == 3 == autoscaler["spec"]["minReplicas"]
    assert budget["spec"]["minAvailable"] == 2
    assert serve["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert next(_containers(serve))["image"] == "ghcr.io/gradeline/gradeline:0.1.0"


def test_the_work_pool_creates_valid_jobs_with_and_without_a_gpu() -> None:
    plain = _work_pool_job({})
    gpu = _work_pool_job({"gpus": 1, "node_selector": {"nvidia.com/gpu.present": "true"},
                          "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]})

    for job in (plain, gpu):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    container = gpu["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_every_environment_variable_set_is_one_that_is_read() -> None:
    names = _environment_names()

    assert {"GRADELINE_MLFLOW_TRACKING_URI", "GRADELINE_PREDICTION_LOG_URI",
            "MLFLOW_BACKEND_STORE_URI", "PREFECT_API_URL"} <= names
    assert _unread(names) == []


def test_command_lines_parse_with_their_programs_own_parsers() -> None:
    """`gradeline` and `mlflow server` arguments through their click parsers; Prefect's
    commands must offer every option given."""
    gradeline = typer.main.get_command(gradeline_cli)
    containers = [container for document in _raw_documents()
                  for container in _containers(document)]
    lines = [(container.get("command", ["gradeline"]), container.get("args", []))
             for container in containers if not container["image"].startswith("prom/")]
    lines += [(service.get("entrypoint", ["gradeline"]), service.get("command", []))
              for service in _gradeline_services()]
    prometheus = [arg.split("=")[0] for container in containers
                  if container["image"].startswith("prom/prometheus") for arg in container["args"]]
    assert prometheus and set(prometheus) <= set(_help_options([_binary("prometheus")]))
    prefect_options: dict[tuple[str, ...], set[str]] = {}
    for command, args in lines:
        if command == ["gradeline"]:
            _parse(gradeline, list(args))
        elif command[:3] == ["python", "-m", "mlflow"]:
            _parse(mlflow.cli.cli, [*command[3:], *args])
        else:
            assert command[:3] == ["python", "-m", "prefect"], command
            prefect_options.setdefault(tuple(command[3:]), set()).update(
                arg for arg in args if arg.startswith("--"))
    assert len(prefect_options) == 2  # server start, worker start
    for subcommand, options in prefect_options.items():
        offered = _help_options([sys.executable, "-m", "prefect", *subcommand])
        assert {option for option in options if option not in offered} == set()


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (`make test` installs Debian's)")
    return found


def _help_options(command: list[str]) -> list[str]:
    """The --options a program's --help lists."""
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return re.findall(r"--[a-z][a-z0-9.-]*", shown.stdout + shown.stderr)


def test_prometheus_in_the_cluster_scrapes_every_serve_replica_with_the_same_rules() -> None:
    documents = {(d["kind"], d["metadata"]["name"]): d for d in _raw_documents()}
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus-k8s.yml").read_text())
    one_host = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    serve = documents[("Deployment", "gradeline-serve")]["spec"]["template"]
    pod = documents[("Deployment", "prometheus")]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    key = next(v for v in pod["volumes"] if v["name"] == "operator-key")["secret"]["items"][0]

    assert config["rule_files"] == one_host["rule_files"]
    selector = job["kubernetes_sd_configs"][0]["selectors"][0]["label"]
    assert dict([selector.split("=")]).items() <= serve["metadata"]["labels"].items()
    assert job["relabel_configs"][0]["regex"] == serve["spec"]["containers"][0]["ports"][0]["name"]
    assert job["authorization"]["credentials_file"] == f"{mounts['operator-key']}/{key['path']}"
    assert job["metrics_path"] == one_host["scrape_configs"][0]["metrics_path"]


def test_ports_and_probes_are_the_ones_the_service_answers_on() -> None:
    documents = {(d["kind"], d["metadata"]["name"]): d for d in _raw_documents()}
    serve = next(_containers(documents[("Deployment", "gradeline-serve")]))
    routes = set(re.findall(r'@app\.get\("(/[a-z]+)"',
                            (ROOT / "components" / "serving" / "app.py").read_text()))

    assert serve["ports"][0]["containerPort"] == SERVE_PORT
    assert str(SERVE_PORT) in serve["args"]
    assert {serve["readinessProbe"]["httpGet"]["path"],
            serve["livenessProbe"]["httpGet"]["path"]} <= routes
    ports = {name: next(_containers(documents[("Deployment", name)]))["ports"][0]["containerPort"]
             for name in ("mlflow", "prefect-server")}
    assert ports == {"mlflow": MLFLOW_PORT, "prefect-server": PREFECT_PORT}
    drain = yaml.safe_load((ROOT / "params.yaml").read_text())["serve"]["drain_seconds"]
    grace = documents[("Deployment", "gradeline-serve")]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    assert grace >= drain + 10


def test_the_image_installs_the_lock_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    make_uv = re.search(r"UV_VERSION := (\S+)", (ROOT / "Makefile").read_text())

    assert make_uv and f'"uv=={make_uv.group(1)}"' in dockerfile
    assert "requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["gradeline"]' in dockerfile
    assert f'"--port", "{SERVE_PORT}"' in dockerfile
