"""The packages' old names (tiling, export, probes, tasks) and the objectives' old class names.

Users' scripts, their LightningCLI configs and every checkpoint trained before the renames name
them; they must keep working, as the same objects, with a deprecation.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from eo_mmcl import aliases
from eo_mmcl.objectives import CLIPObjective, Objective
from eo_mmcl.objectives.train import check_training_args
from tests.conftest import _checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = {"proj_dim": 8, "proj_hidden_dim": 16}


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing of eo_mmcl imported yet); its stdout."""
    result = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("eo_mmcl.tiling", "eo_mmcl.tile"),
        ("eo_mmcl.tiling.store", "eo_mmcl.tile.store"),
        ("eo_mmcl.tiling.tile", "eo_mmcl.tile.run"),
        ("eo_mmcl.export.cog", "eo_mmcl.embed.cog"),
        ("eo_mmcl.probes.run", "eo_mmcl.probe.run"),
        ("eo_mmcl.tasks", "eo_mmcl.objectives"),
        ("eo_mmcl.tasks.clip", "eo_mmcl.objectives.clip"),
    ],
)
def test_an_old_module_name_is_the_new_module(old: str, new: str) -> None:
    out = _fresh_python(
        f"""
        import importlib
        old = importlib.import_module({old!r})
        new = importlib.import_module({new!r})
        print("same", old is new, old.__spec__.name)
        """
    )
    assert f"same True {new}" in out  # one module object, which keeps its own spec
    package = ".".join(old.split(".")[:2])
    assert out.count(f"{package} is now {aliases.RENAMED_PACKAGES[package]}") == 1


def test_old_names_warn_once_per_package_and_load_nothing_twice() -> None:
    out = _fresh_python(
        """
        import sys
        from eo_mmcl.tiling.store import open_store
        from eo_mmcl.tiling import store
        import eo_mmcl.tiling.pairs
        from eo_mmcl.tile.store import open_store as new
        print("identical", open_store is new)
        from eo_mmcl.tiling import tile
        import eo_mmcl.tile.run
        print("module", tile is eo_mmcl.tile.run)
        modules = {id(m): m for m in list(sys.modules.values())}  # old names: the same objects
        files = [m.__file__ for m in modules.values() if getattr(m, "__file__", None)]
        print("copies", len(files) - len(set(files)))
        """
    )
    assert "identical True" in out
    assert "module True" in out
    assert "copies 0" in out  # no source file was executed under two names
    assert out.count("eo_mmcl.tiling is now eo_mmcl.tile") == 1


def test_an_old_class_name_is_the_new_class() -> None:
    import eo_mmcl.tasks as old_package  # type: ignore[import-not-found]

    import eo_mmcl.objectives.clip as clip_module

    with pytest.warns(DeprecationWarning, match="CLIPTask is now .*CLIPObjective"):
        assert old_package.CLIPTask is CLIPObjective
    with pytest.warns(DeprecationWarning, match="ObjectiveTask is now .*Objective"):
        assert old_package.ObjectiveTask is Objective
    with pytest.warns(DeprecationWarning):
        assert clip_module.CLIPTask is CLIPObjective  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'CLIPTusk'"):
        _ = clip_module.CLIPTusk  # type: ignore[attr-defined]


def test_a_checkpoint_naming_the_old_class_path_loads(
    probe_chips_dir: Path, tmp_path: Path
) -> None:
    """Checkpoints trained by ``eo-mmcl train`` before the renames store LightningCLI's class path.

    Lightning rebuilds such a checkpoint only if that path's module is already imported, which
    nothing does under the old name in a new process.
    """
    path = _checkpoint(CLIPObjective(**TINY), tmp_path / "old.ckpt", probe_chips_dir)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["_class_path"] = "eo_mmcl.tasks.CLIPTask"
    checkpoint["hyper_parameters"]["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    torch.save(checkpoint, path)
    out = _fresh_python(
        f"""
        import json
        from eo_mmcl.objectives.checkpoint import load_trained
        model, meta = load_trained({str(path)!r})
        print(json.dumps({{"class": type(model).__name__, "objective": meta["objective"]}}))
        """
    )
    line = next(x for x in out.splitlines() if x.startswith("{"))
    assert json.loads(line) == {"class": "CLIPObjective", "objective": "clip"}


def test_a_config_naming_the_old_class_path_parses(tmp_path: Path) -> None:
    config = (REPO / "tests" / "conf" / "clip_tiny.yaml").read_text()
    old = tmp_path / "old.yaml"
    old.write_text(config.replace("eo_mmcl.objectives.CLIPObjective", "eo_mmcl.tasks.CLIPTask"))
    parsed = check_training_args(["--config", str(old)], "here")
    assert parsed.model.class_path in ("eo_mmcl.tasks.CLIPTask", "eo_mmcl.objectives.CLIPObjective")
    assert parsed.model.init_args.proj_dim == 16


def test_the_package_itself_uses_only_the_new_names() -> None:
    olds = [*aliases.RENAMED_PACKAGES, *{o for r in aliases.RENAMED_ATTRIBUTES.values() for o in r}]
    pattern = re.compile(r"\b(" + "|".join(re.escape(o) for o in olds) + r")\b")
    for source in (REPO / "eo_mmcl").rglob("*.py"):
        if source.name == "aliases.py":
            continue
        code = [line.split("#")[0] for line in source.read_text().splitlines()]
        found = [line for line in code if pattern.search(line)]
        assert not found, (source, found)
