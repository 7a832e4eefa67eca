"""Run a pipeline file stage by stage, skipping what is finished and resuming what was killed.

For every stage the runner computes a fingerprint from the stage's config and the digests of its
inputs (upstream outputs, source files, training configs). A stage whose folder holds a
``complete`` manifest with that fingerprint, and whose outputs are still there, is skipped. A
stage killed midway (manifest ``running`` with the same fingerprint) resumes through its own
resume logic; one whose config or inputs changed starts over. The manifest is written last, so
a folder never looks finished before it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.logging import RichHandler

from eo_mmcl.errors import ConfigError
from eo_mmcl.io import atomic_output
from eo_mmcl.pipeline.config import STAGES, PipelineConfig
from eo_mmcl.pipeline.manifest import StageManifest, fingerprint, now, tree_digest
from eo_mmcl.pipeline.stages import STAGE_FUNCTIONS, StageContext, outputs_of

log = logging.getLogger("eo_mmcl.pipeline")

#: The stages each stage reads from (those present in a pipeline). Tiling and the export read
#: the rasters' pixels, not only the catalog's description of them: they depend on the scenes
#: (and on the catalog's sources) too, so new pixels under the same metadata rerun them.
DEPENDS: dict[str, tuple[str, ...]] = {
    "simulate": (),
    "catalog": ("simulate",),
    "tile": ("catalog", "simulate"),
    "train": ("tile",),
    "embed": ("train", "catalog", "tile", "simulate"),
    "probe": ("train", "tile", "embed"),
    "report": ("probe", "embed"),
}

#: Stages that read the catalog's sources (their digests are part of their inputs).
READS_SOURCES: tuple[str, ...] = ("catalog", "tile", "embed")

LOG_FILE = "pipeline.log"


@dataclass(frozen=True)
class StageOutcome:
    """What happened to one stage in a run.

    Args:
        stage: Stage name.
        status: ``ran``, ``resumed``, ``skipped`` (finished, unchanged) or ``not selected``.
        seconds: Wall time of this run (0 when skipped).
        summary: The stage's figures.
    """

    stage: str
    status: str
    seconds: float
    summary: dict[str, Any]


def _digest_of(outputs: dict[str, Any]) -> str:
    return fingerprint(outputs, {})


def stage_config(config: PipelineConfig, stage: str, base: Path) -> dict[str, Any]:
    """The part of the pipeline config that decides a stage's outputs.

    Args:
        config: The pipeline config.
        stage: Stage name.
        base: Folder relative paths are resolved against.

    Returns:
        JSON-serialisable config.
    """
    dumped = config.model_dump(mode="json")
    section: dict[str, Any] = {"seed": config.seed, stage: dumped.get(stage)}
    if stage == "train":
        configs = base / config.train.configs
        section["objective_configs"] = {
            o: tree_digest(_config_files(configs / f"{o}.yaml"), base)
            for o in config.train.objectives
        }
    return section


def _config_files(path: Path) -> list[Path]:
    """A LightningCLI config and the files it includes (``trainer: trainer.yaml``)."""
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return [path]  # the training stage reports it
    included = [
        path.parent / value
        for value in (tree.values() if isinstance(tree, dict) else [])
        if isinstance(value, str) and value.endswith((".yaml", ".yml"))
    ]
    return [path, *included]


def _source_inputs(config: PipelineConfig, base: Path) -> dict[str, Any]:
    """Digests of the catalog's external sources (files under folders, YAML definitions)."""
    digests: dict[str, Any] = {}
    for source in config.catalog.sources:
        path = base / source
        digests[str(source)] = _digest_of(tree_digest([path], path.parent))
    return digests


def _select(stages: Sequence[str], start: str | None, until: str | None) -> list[str]:
    for option, name in (("--from", start), ("--until", until)):
        if name is not None and name not in stages:
            raise ConfigError(f"{option} {name}: not a stage of this pipeline {list(stages)}")
    first = stages.index(start) if start else 0
    last = stages.index(until) if until else len(stages) - 1
    if first > last:
        raise ConfigError(f"--from {start} comes after --until {until}")
    return list(stages[first : last + 1])


def _attach_logging(run_dir: Path) -> list[logging.Handler]:
    run_dir.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    console_handler = RichHandler(show_path=False, markup=False)
    handlers: list[logging.Handler] = [file_handler, console_handler]
    for name in ("eo_mmcl", "lightning.pytorch"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(file_handler)
    log.addHandler(console_handler)
    return handlers


def _detach_logging(handlers: list[logging.Handler]) -> None:
    for name in ("eo_mmcl", "lightning.pytorch", "eo_mmcl.pipeline"):
        for handler in handlers:
            logging.getLogger(name).removeHandler(handler)
    for handler in handlers:
        handler.close()


def _stage_inputs(
    config: PipelineConfig, stage: str, stages: list[str], run_dir: Path, base: Path
) -> dict[str, Any]:
    """Digest what a stage reads: its upstream stages' outputs and the catalog's sources.

    Digests are of contents, not times, so that a changed input reruns the stage.
    """
    inputs: dict[str, Any] = {}
    for upstream in DEPENDS[stage]:
        if upstream not in stages:
            continue
        previous = StageManifest.read(run_dir / upstream)
        inputs[upstream] = _digest_of(previous.outputs) if previous else None
    if stage in READS_SOURCES and config.catalog.sources:
        inputs["sources"] = _source_inputs(config, base)
    return inputs


def _run_stage(
    function: Callable[[StageContext], dict[str, Any]],
    ctx: StageContext,
    record: StageManifest,
) -> tuple[float, dict[str, Any]]:
    """Run one stage between its "running" and "complete" manifests.

    Returns:
        The stage's seconds and its summary.
    """
    ctx.folder.mkdir(parents=True, exist_ok=True)
    record.write(ctx.folder)
    start_time = time.perf_counter()
    summary = function(ctx)
    seconds = time.perf_counter() - start_time
    record.outputs = tree_digest(outputs_of(record.stage, ctx), ctx.folder)
    record.status, record.finished = "complete", now()
    record.seconds, record.summary = round(seconds, 2), summary
    record.write(ctx.folder)
    log.info("%s: done in %.1f s %s", record.stage, seconds, summary)
    return seconds, summary


def run_pipeline(
    config: PipelineConfig,
    base: Path | None = None,
    force: Sequence[str] = (),
    start: str | None = None,
    until: str | None = None,
    show_progress: bool = True,
    stage_functions: dict[str, Callable[[StageContext], dict[str, Any]]] | None = None,
) -> list[StageOutcome]:
    """Run the stages of a pipeline.

    Args:
        config: The validated pipeline config.
        base: Folder relative paths are resolved against (default: the working directory).
        force: Stages to run again even if finished.
        start: First stage to run (``--from``): it and every later stage run again; earlier
            stages must be finished.
        until: Last stage to run (``--until``).
        show_progress: Rich progress bars inside stages.
        stage_functions: Stage implementations (default: :data:`STAGE_FUNCTIONS`).

    Returns:
        One outcome per stage of the pipeline, in order.

    Raises:
        ConfigError: If a path is missing, a stage name is unknown, a stage has no
            implementation, or an earlier stage needed by ``--from`` is not finished.
    """
    base = (base or Path.cwd()).resolve()
    functions = STAGE_FUNCTIONS if stage_functions is None else stage_functions
    stages: list[str] = [s for s in STAGES if s in config.stages]
    for name in force:
        if name not in stages:
            raise ConfigError(f"--force {name}: not a stage of this pipeline {stages}")
    missing = [s for s in stages if s not in functions]
    if missing:
        raise ConfigError(f"stages: {missing} have no implementation in this version")
    selected = _select(stages, start, until)
    config.check_paths(base)
    run_dir = base / config.run_dir
    handlers = _attach_logging(run_dir)
    try:
        with atomic_output(run_dir / "pipeline_config.json") as tmp:
            tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
        log.info("pipeline %s: run folder %s, stages %s", config.name, run_dir, selected)
        rerun_from = stages.index(start) if start else len(stages)
        outcomes: list[StageOutcome] = []
        for index, stage in enumerate(stages):
            folder = run_dir / stage
            inputs = _stage_inputs(config, stage, stages, run_dir, base)
            settings = stage_config(config, stage, base)
            stage_print = fingerprint(settings, inputs)
            manifest = StageManifest.read(folder)
            finished = (
                manifest is not None
                and manifest.status == "complete"
                and manifest.fingerprint == stage_print
                and manifest.outputs_present(folder)
            )
            wanted = stage in selected
            forced = stage in force or index >= rerun_from
            if not wanted:
                if index < stages.index(selected[0]) and not finished:
                    raise ConfigError(
                        f"stage {stage} is not finished (or its inputs changed): run it first "
                        f"(without --from {selected[0]})"
                    )
                outcomes.append(StageOutcome(stage, "not selected", 0.0, {}))
                continue
            if finished and not forced:
                assert manifest is not None
                log.info("%s: finished and unchanged, skipped", stage)
                outcomes.append(StageOutcome(stage, "skipped", 0.0, manifest.summary))
                continue
            resuming = (
                manifest is not None
                and manifest.status == "running"
                and manifest.fingerprint == stage_print
                and not forced
            )
            restart = not resuming and (manifest is not None or forced)
            log.info("%s: %s", stage, "resuming" if resuming else "running")
            record = StageManifest(stage, "running", stage_print, settings, inputs)
            ctx = StageContext(
                config=config,
                run_dir=run_dir,
                folder=folder,
                base=base,
                restart=restart,
                fingerprint=stage_print,
                show_progress=show_progress,
            )
            seconds, summary = _run_stage(functions[stage], ctx, record)
            status = "resumed" if resuming else "ran"
            outcomes.append(StageOutcome(stage, status, seconds, summary))
        return outcomes
    finally:
        _detach_logging(handlers)
