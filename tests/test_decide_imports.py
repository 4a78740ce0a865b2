"""The import contract of autoscaler.decide: no module there may reach the outside world."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autoscaler

DECIDE = Path(autoscaler.__file__).parent / "decide"
FORBIDDEN = {
    "docker", "requests", "boto3", "botocore", "influxdb", "socket", "time", "subprocess",
    "urllib", "http",
}  # fmt: skip


def imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


MODULES = sorted(DECIDE.rglob("*.py"))


def test_decide_package_has_modules() -> None:
    names = {p.name for p in MODULES}
    assert {"__init__.py", "hpa.py", "schedule.py", "signals.py", "services.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_io_imports(path: Path) -> None:
    roots = imported_roots(ast.parse(path.read_text(), filename=str(path)))
    assert not roots & FORBIDDEN, f"{path.name} imports {sorted(roots & FORBIDDEN)}"


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import urllib.request",
        "from http import client",
        "from socket import create_connection",
        "import importlib; importlib.import_module('requests')",
        "def f():\n    import docker\n",
    ],
)
def test_the_check_catches(source: str) -> None:
    assert imported_roots(ast.parse(source)) & FORBIDDEN
