"""Imports point one way: bot -> agent -> memory; gateway -> agent -> memory; mcp_server -> skills -> memory;
omni.cli on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("omni", "bot", "agent", "gateway", "memory", "mcp_server", "skills")

# What each package may import from the project. omni.settings/omni.errors/omni.logging/omni.net are
# leaves anyone may use; omni.cli and omni.doctor are the composition root.
ALLOWED: dict[str, set[str]] = {
    "memory": {"memory"},
    "skills": {"skills", "memory"},
    "mcp_server": {"mcp_server", "skills", "memory"},
    "agent": {"agent", "memory"},
    "bot": {"bot", "agent", "memory"},
    "gateway": {"gateway", "agent", "memory"},  # a frontend like bot; only omni (the root) imports it
    "omni": set(PACKAGES),
}
LEAVES = {"omni", "omni.settings", "omni.errors", "omni.logging", "omni.net"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[tuple[str, Path]]:
    return [(pkg, p) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), _modules(), ids=lambda v: str(v))
def test_imports_point_the_right_way(package: str, path: Path) -> None:
    bad = []
    for name in _imports(path):
        top = name.split(".")[0]
        if top not in PACKAGES or name in LEAVES or top in ALLOWED[package]:
            continue
        bad.append(name)
    assert not bad, f"{path.relative_to(ROOT)} imports {bad} against the layering"


def test_no_module_shadows_the_mcp_sdk() -> None:
    assert not [p for _, p in _modules() if p.name == "mcp.py"]


def test_every_test_directory_is_a_package() -> None:
    missing = [
        d
        for d in (ROOT / "tests").rglob("*")
        if d.is_dir()
        and d.name != "__pycache__"
        and any(d.glob("test_*.py"))
        and not (d / "__init__.py").exists()
    ]
    assert not missing
