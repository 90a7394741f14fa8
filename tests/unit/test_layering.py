"""The collector and the processor share only openqoe_common and schemas."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("package", "other"), [("processors", "ingest"), ("ingest", "processors")])
def test_neither_component_imports_the_other(package: str, other: str) -> None:
    assert other not in imported_packages(package)


def test_the_shared_helpers_depend_on_neither_component() -> None:
    assert not imported_packages("openqoe_common") & {"ingest", "processors"}
