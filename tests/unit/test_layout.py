"""The import rules of DESIGN.md: components never import prefect or flows; model_registry
imports neither flows nor components. Checked statically, so a violation is found unexecuted."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
RULES = {
    "components": {"prefect", "flows"},
    "model_registry": {"flows", "components"},
}


def forbidden_imports(root: Path, package: str, forbidden: set[str]) -> list[str]:
    """Every absolute import of a forbidden top-level package under `package`, as file:line."""
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
            for module in modules:
                if module.split(".")[0] in forbidden:
                    found.append(
                        f"{path.relative_to(root).as_posix()}:{node.lineno} imports {module}"
                    )
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
