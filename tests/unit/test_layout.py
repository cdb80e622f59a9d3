"""The layout rules of DESIGN.md: components never import prefect, flows or cli; model_registry
imports neither flows, cli nor components; flows never import cli or mlflow, and each file of
flows/ defines a flow; only components/tracking.py starts an MLflow run; the stage folders of
components/ stand on the vision core and never on each other; benchmarks import no test code;
flows and the CLI never branch on a task type's name (they find the stage's plugin); no source
file is over 400 lines. Checked statically, so a violation is found unexecuted."""

import ast
from pathlib import Path

import pytest

from components.vision.tasks import TASK_TYPES

REPO = Path(__file__).parents[2]
RULES = {
    "components": {"prefect", "flows", "cli"},
    "model_registry": {"flows", "cli", "components"},
    "flows": {"cli", "mlflow"},  # the run is components/tracking.py's
    "benchmarks": {"tests"},
}


# Stage -> stages it may import besides the vision core. Evaluation judges what training made.
STAGE_EXCEPTIONS = {"evaluate": {"train"}}
CORE = "vision"


def absolute_imports(root: Path, package: str) -> list[tuple[str, int, str]]:
    """Every absolute import under `package`, as (file relative to root, line, module)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            found += [(path.relative_to(root).as_posix(), node.lineno, module)
                      for module in modules]
    return found


def forbidden_imports(root: Path, package: str, forbidden: set[str]) -> list[str]:
    """Every absolute import of a forbidden top-level package under `package`, as file:line."""
    return [f"{file}:{line} imports {module}"
            for file, line, module in absolute_imports(root, package)
            if module.split(".")[0] in forbidden]


def stage_crossings(root: Path) -> list[str]:
    """Every import of one stage folder of components/ by another (or of a stage by the core)
    that STAGE_EXCEPTIONS does not allow, as file:line."""
    stages = {path.parent.name for path in (root / "components").glob("*/__init__.py")}
    found = []
    for file, line, module in absolute_imports(root, "components"):
        parts = file.split("/")
        importer, imported = parts[1], module.split(".")
        if len(parts) < 3 or imported[0] != "components" or len(imported) < 2:
            continue  # a top-level module of components/, or not an import of one
        target = imported[1]
        if (target in stages and target not in (importer, CORE)
                and target not in STAGE_EXCEPTIONS.get(importer, set())):
            found.append(f"{file}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_respects_import_rules(package: str) -> None:
    assert (REPO / package).is_dir(), f"{package}/ not found under {REPO}"

    violations = forbidden_imports(REPO, package, RULES[package])

    listing = "\n".join(violations)
    assert not violations, f"{package}/ must not import {sorted(RULES[package])}:\n{listing}"


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    (tmp_path / "components" / "sub").mkdir(parents=True)
    (tmp_path / "components" / "sub" / "ok.py").write_text("from .x import y\nimport prefecture\n")
    (tmp_path / "components" / "bad.py").write_text("import os\nfrom prefect import flow\n")

    assert forbidden_imports(tmp_path, "components", {"prefect"}) == [
        "components/bad.py:2 imports prefect"
    ]


def test_stages_stand_on_the_vision_core_and_not_on_each_other() -> None:
    crossings = stage_crossings(REPO)

    listing = "\n".join(crossings)
    assert not crossings, f"stage folders import each other (DESIGN.md, Layout):\n{listing}"


def test_the_stage_checker_catches_a_crossing_and_the_core_importing_a_stage(
        tmp_path: Path) -> None:
    for folder in ("serving", "monitor", "vision", "evaluate", "train"):
        (tmp_path / "components" / folder).mkdir(parents=True)
        (tmp_path / "components" / folder / "__init__.py").write_text("")
    (tmp_path / "components" / "oncall.py").write_text("import components.serving.app\n")
    (tmp_path / "components" / "monitor" / "drift.py").write_text(
        "from components.vision.graph import GraderSession\nfrom components import oncall\n"
        "from components.serving.app import build_app\n")
    (tmp_path / "components" / "vision" / "models.py").write_text(
        "from components.serving.metrics import ServiceMetrics\n")
    (tmp_path / "components" / "evaluate" / "grader.py").write_text(
        "from components.train.trainer import train\n")

    assert stage_crossings(tmp_path) == [
        "components/monitor/drift.py:3 imports components.serving.app",
        "components/vision/models.py:1 imports components.serving.metrics",
    ]


def flowless_files(root: Path) -> list[str]:
    """Files of flows/ that define no Prefect flow (no function decorated with `flow`)."""
    found = []
    for path in sorted((root / "flows").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        decorators = [decorator.func if isinstance(decorator, ast.Call) else decorator
                      for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                      for decorator in node.decorator_list]
        if not any(isinstance(d, ast.Name) and d.id == "flow" for d in decorators):
            found.append(path.relative_to(root).as_posix())
    return found


def test_flows_holds_only_flows() -> None:
    assert flowless_files(REPO) == []


def test_the_flow_checker_finds_a_file_without_a_flow(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("")
    (tmp_path / "flows" / "train.py").write_text(
        "from prefect import flow\n\n@flow(name='train')\ndef train():\n    pass\n")
    (tmp_path / "flows" / "helpers.py").write_text("def resolve():\n    pass\n")

    assert flowless_files(tmp_path) == ["flows/helpers.py"]


def test_only_tracking_starts_an_mlflow_run() -> None:
    starting = sorted(path.relative_to(REPO).as_posix()
                      for folder in ("components", "flows", "cli", "model_registry")
                      for path in (REPO / folder).rglob("*.py")
                      if "start_run(" in path.read_text(encoding="utf-8"))

    assert starting == ["components/tracking.py"]


MAX_LINES = 400


def test_no_source_file_is_over_400_lines() -> None:
    long_files = {path.relative_to(REPO).as_posix(): lines
                  for folder in ("components", "flows", "cli", "model_registry", "benchmarks")
                  for path in sorted((REPO / folder).rglob("*.py"))
                  if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}

    assert long_files == {}


def task_name_branches(root: Path, folders: tuple[str, ...]) -> list[str]:
    """Comparisons with a task type's name (`task == "detect"`, `x in ("grade", "detect")`)
    under `folders`, as file:line."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Compare):
                    continue
                constants = [c for side in (node.left, *node.comparators)
                             for c in ast.walk(side) if isinstance(c, ast.Constant)]
                if any(c.value in TASK_TYPES for c in constants):
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def test_flows_and_the_cli_find_task_plugins_instead_of_branching_on_names() -> None:
    assert task_name_branches(REPO, ("flows", "cli")) == []


def test_the_branch_checker_finds_a_comparison_with_a_task_name(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "train.py").write_text(
        "def pick(task):\n    if task != 'detect':\n        return 1\n"
        "    return 2 if task in ('grade', 'x') else 3\n")

    assert task_name_branches(tmp_path, ("flows",)) == ["flows/train.py:2", "flows/train.py:4"]
