"""The lint contracts `make lint` runs really fail: function size (ruff) and import layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: run make install")
    return str(path)


def _function(statements: int) -> str:
    body = "\n".join(f"    values.append({i})" for i in range(statements - 2))
    return (
        f'"""A module."""\n\n\ndef long_one() -> list[int]:\n    """Count."""\n'
        f"    values: list[int] = []\n{body}\n    return values\n"
    )


def _ruff(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("ruff"), "check", "--config", str(REPO / "pyproject.toml"), "--no-cache", "."],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def test_function_size_limit_fails_past_sixty_statements(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "ok.py").write_text(_function(60))
    result = _ruff(tmp_path)
    assert result.returncode == 0, result.stdout

    (package / "long.py").write_text(_function(61))
    result = _ruff(tmp_path)
    assert result.returncode == 1
    assert "PLR0915" in result.stdout and "long.py" in result.stdout
    assert "ok.py" not in result.stdout


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so grimp analyses it rather than the installed package.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [_tool("lint-imports"), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "imports", "contract"),
    [
        ("losses/_leak.py", "eo_mmcl.objectives.base", "losses import no objective"),
        ("simulate/_leak.py", "eo_mmcl.report", "stage packages in flow order"),
        ("geo/_leak.py", "eo_mmcl.cli", "nothing under eo_mmcl imports the command line"),
        ("theory/_leak.py", "eo_mmcl.objectives.cross_self", "the theory lab imports no stage"),
    ],
)
def test_import_contracts_fail_on_a_deliberate_violation(
    tmp_path: Path, module: str, imports: str, contract: str
) -> None:
    shutil.copytree(
        REPO / "eo_mmcl", tmp_path / "eo_mmcl", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "BROKEN" not in clean.stdout

    (tmp_path / "eo_mmcl" / module).write_text(f'"""A leak."""\n\nimport {imports}  # noqa: F401\n')
    broken = _lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    leaking = "eo_mmcl." + module.removesuffix(".py").replace("/", ".")
    assert leaking in broken.stdout
    assert f"{contract}" in broken.stdout and "BROKEN" in broken.stdout


def test_no_module_of_the_package_is_over_400_lines() -> None:
    # A module a newcomer reads in one sitting: split by concept before it grows past this.
    long = {
        str(path.relative_to(REPO)): n
        for path in (REPO / "eo_mmcl").rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"
