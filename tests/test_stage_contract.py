"""The stage contract, once for every stage: a killed stage resumes to the same bytes.

Killed at a random job, a rerun ends with the bytes of an uninterrupted run; a changed input
(content, not time) reruns a stage, an unchanged one skips.

Every stage runs its work as jobs through one ledger (:mod:`eo_mmcl.io.jobs`): the pipeline's
stage jobs (a scene, an objective at a seed, an objective's export...) and the jobs inside the
chip store and the export (chunks, blocks). A helper process runs the pipeline up to one stage
and SIGKILLs itself right after the k-th marker any ledger writes (k drawn per stage, seeded,
among the markers an uninterrupted run writes), so no cleanup runs, as in a real kill.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import yaml

from eo_mmcl.io import jobs
from eo_mmcl.pipeline import MANIFEST, StageManifest, load_pipeline_config, run_pipeline

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "conf" / "pipeline_tiny.yaml"
STAGES = ["simulate", "catalog", "tile", "train", "embed", "probe", "report"]

#: Files whose bytes legitimately differ between two runs, with why. Everything else must match.
VOLATILE = {
    MANIFEST: "start and end times, wall seconds",
    "probe_meta.json": "wall seconds of the probing (compared without them)",
}

KILLER = """
import os, signal, sys
from pathlib import Path
from eo_mmcl.io import jobs
from eo_mmcl.pipeline import load_pipeline_config, run_pipeline

path, stage, kill_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real, written = jobs.mark_done, []

def mark_then_die(folder, job_id, result):
    real(folder, job_id, result)
    written.append(job_id)
    if len(written) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, as a real kill

jobs.mark_done = mark_then_die
run_pipeline(load_pipeline_config(path), base=path.parent, until=stage, show_progress=False)
"""


def pipeline_tree(run_dir: Path) -> dict[str, Any]:
    """Every stage, two scenes, the oracle and clip at two training seeds: a few minutes."""
    tree = yaml.safe_load(TINY.read_text())
    tree["run_dir"] = str(run_dir)
    tree["simulate"]["scenes"] = 2
    tree["simulate"]["size"] = 256  # two jobs, the pixels of the tiny run's one scene
    tree["train"]["configs"] = str(REPO / "pipelines" / "configs")
    tree["train"]["objectives"] = ["supervised", "clip"]
    tree["train"]["seeds"] = [0, 1]
    tree["probe"] = {"config": {"seeds": 1, "probes": ["linear"]}}
    tree["stages"] = STAGES
    return tree


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Counter[str]]:
    """An uninterrupted run, moved to ``ref/``, and how many markers each stage wrote.

    Returns:
        The pipeline file, the reference run folder and the markers per stage.
    """
    root = tmp_path_factory.mktemp("contract")
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline_tree(root / "run")), encoding="utf-8")
    counts: Counter[str] = Counter()
    real = jobs.mark_done

    def counting(folder: str, job_id: str, result: Any) -> None:
        real(folder, job_id, result)
        counts[Path(folder).relative_to(root / "run").parts[0]] += 1

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "mark_done", counting)
        outcomes = run_pipeline(load_pipeline_config(path), base=root, show_progress=False)
    assert [o.status for o in outcomes] == ["ran"] * len(STAGES)
    (root / "run").rename(root / "ref")
    return path, root / "ref", counts


def _files(folder: Path) -> dict[str, Path]:
    """A stage folder's files, hidden work folders (ledgers, temporaries) left out."""
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def _assert_same_bytes(resumed: Path, whole: Path) -> None:
    a, b = _files(resumed), _files(whole)
    assert a.keys() == b.keys()
    for name, path in a.items():
        if Path(name).name == MANIFEST:
            continue
        if Path(name).name == "probe_meta.json":
            meta = [json.loads(p.read_text()) for p in (path, b[name])]
            for m in meta:
                m.pop("seconds")
            assert meta[0] == meta[1], name
            continue
        if path.suffix == ".tif" and path.read_bytes() != b[name].read_bytes():
            _assert_same_raster(path, b[name])
            continue
        assert path.read_bytes() == b[name].read_bytes(), f"{name} differs"


def _assert_same_raster(a: Path, b: Path) -> None:
    """Two GeoTIFFs with the same pixels, tags, profile and tile layout.

    GDAL 3.10's COG driver leaves the padding of partial edge tiles (outside the raster) as it
    finds it in memory, so two writes of the same pixels can differ in those bytes only.
    """
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        pa, pb = dict(ra.profile), dict(rb.profile)
        na, nb = pa.pop("nodata"), pb.pop("nodata")
        assert pa == pb and (na == nb or (np.isnan(na) and np.isnan(nb))), a
        assert ra.tags() == rb.tags(), a
        assert [ra.tags(i) for i in ra.indexes] == [rb.tags(i) for i in rb.indexes], a
        assert ra.overviews(1) == rb.overviews(1), a
        np.testing.assert_array_equal(ra.read(), rb.read(), err_msg=str(a))


#: The cases that train or embed take half a minute each: ``slow`` (``make test-all``), so that
#: the default suite stays under 15 minutes on two cores; the others run in every CI run.
HEAVY = ("train", "embed", "probe")


@pytest.mark.parametrize(
    "stage", [pytest.param(s, marks=pytest.mark.slow) if s in HEAVY else s for s in STAGES]
)
def test_a_stage_killed_at_a_random_job_resumes_to_the_same_bytes(
    reference: tuple[Path, Path, Counter[str]], stage: str
) -> None:
    path, ref, counts = reference
    run = path.parent / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ref, run)
    shutil.rmtree(run / stage)
    n_markers = counts[stage]
    assert n_markers >= 1, f"{stage} ran no job through a ledger"
    kill_at = int(np.random.default_rng(zlib.crc32(stage.encode())).integers(1, n_markers + 1))
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(path), stage, str(kill_at)],
        cwd=path.parent,
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    half = StageManifest.read(run / stage)
    assert half is not None and half.status == "running", "the stage looks finished"
    outcomes = run_pipeline(
        load_pipeline_config(path), base=path.parent, until=stage, show_progress=False
    )
    statuses = {o.stage: o.status for o in outcomes}
    assert statuses[stage] == "resumed"
    assert all(statuses[s] == "skipped" for s in STAGES[: STAGES.index(stage)])
    _assert_same_bytes(run / stage, ref / stage)
    shutil.rmtree(run)


def test_the_reference_run_hands_on_one_checkpoint_per_seed_and_skips_when_rerun(
    reference: tuple[Path, Path, Counter[str]],
) -> None:
    path, ref, _ = reference
    train = ref / "train"
    for objective in ("supervised", "clip"):
        weights = []
        for seed in (0, 1):
            best = train / objective / f"seed_{seed}" / "checkpoints" / "best.ckpt"
            checkpoint = torch.load(best, map_location="cpu", weights_only=True)
            assert checkpoint["eo_mmcl"]["train_seed"] == seed
            weights.append(next(iter(checkpoint["state_dict"].values())))
        assert not torch.equal(*weights)  # a second seed is a second draw, not a copy
    table = pd.read_parquet(ref / "probe" / "probes.parquet")
    for objective in ("supervised", "clip", "random-init"):
        seeds = set(table.loc[table["objective"].str.startswith(objective), "train_seed"])
        assert seeds == {0, 1}, objective
    assert (ref / "probe" / "instrument.parquet").is_file()
    run = path.parent / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ref, run)
    again = run_pipeline(load_pipeline_config(path), base=path.parent, show_progress=False)
    assert [o.status for o in again] == ["skipped"] * len(STAGES)
    shutil.rmtree(run)


def test_new_pixels_rerun_the_stages_that_read_them_and_a_touch_reruns_nothing(
    reference: tuple[Path, Path, Counter[str]], tmp_path: Path
) -> None:
    _, ref, _ = reference
    sources = tmp_path / "scenes"
    shutil.copytree(ref / "simulate", sources)
    tree = pipeline_tree(tmp_path / "run")
    tree.pop("simulate")
    tree["catalog"] = {"sources": [str(sources)]}
    tree["stages"] = ["catalog", "tile"]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    first = run_pipeline(load_pipeline_config(path), base=tmp_path, show_progress=False)
    assert [o.status for o in first] == ["ran", "ran"]
    chips = (tmp_path / "run" / "tile" / "tile_manifest.json").read_bytes()
    s2 = sorted(sources.rglob("*S2*.tif"))[0]
    for file in sources.rglob("*.tif"):
        file.touch()  # a new time, the same bytes
    touched = run_pipeline(load_pipeline_config(path), base=tmp_path, show_progress=False)
    assert [o.status for o in touched] == ["skipped", "skipped"]
    with rasterio.open(s2, "r+") as raster:
        raster.write(raster.read() + 1)  # same metadata, other pixels
    changed = run_pipeline(load_pipeline_config(path), base=tmp_path, show_progress=False)
    assert [o.status for o in changed] == ["ran", "ran"]
    assert (tmp_path / "run" / "tile" / "tile_manifest.json").read_bytes() != chips


def test_landcover_notebook_runs_on_a_run(
    reference: tuple[Path, Path, Counter[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path, ref, _ = reference
    run_dir = path.parent / "run"  # where the run was made: its catalog names files there
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(ref, run_dir)
    path = REPO / "notebooks" / "landcover_probes.ipynb"
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("EO_MMCL_RUN_DIR", str(run_dir))
    monkeypatch.setenv("EO_MMCL_OBJECTIVE", "clip")
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}
    )
    client.execute()
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "balanced accuracy on the eastern test part" in text
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 3  # PCA false colour, confusion matrix, prediction maps
    shutil.rmtree(run_dir)
