"""Every third-party library the package imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for path in (REPO / "eo_mmcl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"eo_mmcl", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        _normalise(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def test_every_imported_library_is_declared() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    # dask[distributed] declares the `distributed` package through its extra.
    declared |= {"distributed"} if "dask" in declared else set()
    undeclared = {
        module: distributions.get(module, [module])
        for module in _imported_top_level_modules()
        if not any(_normalise(d) in declared for d in distributions.get(module, [module]))
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
