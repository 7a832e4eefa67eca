"""The stages of a batch run, each a thin adapter from the pipeline config to a stage's API.

A stage function receives a :class:`StageContext`, splits its work into jobs (a scene, an
objective at a training seed, an objective's export...) and runs them through the stage's job
ledger (``ctx.ledger``, :mod:`eo_mmcl.io.jobs`): a killed stage reruns only the jobs without a
marker, and a job killed midway resumes through its own atomic outputs (the chip store's and
the export's own ledgers, Lightning's ``last.ckpt``). It returns a summary (figures for the
manifest and the log) and writes only inside its own folder; the runner decides whether it runs
at all, and whether it resumes (``ctx.restart`` False) or starts over (``ctx.restart`` True:
config or inputs changed, or forced).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eo_mmcl.errors import ConfigError
from eo_mmcl.io import atomic_output
from eo_mmcl.io.jobs import JobLedger
from eo_mmcl.pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from eo_mmcl.objectives.train import TrainingRun

log = logging.getLogger("eo_mmcl.pipeline")

#: The stage ledger's folder inside a stage folder.
JOBS_FOLDER = ".jobs"
#: The checkpoint with the best validation loss, copied under a fixed name for later stages.
BEST_CHECKPOINT = "best.ckpt"


@dataclass(frozen=True)
class StageContext:
    """What a stage needs to run.

    Args:
        config: The whole pipeline config.
        run_dir: The run folder.
        folder: This stage's folder (inside ``run_dir``).
        base: Folder that relative paths of the config are resolved against.
        restart: Start over rather than resume.
        fingerprint: The stage's fingerprint (markers of partial work carry it).
        show_progress: Show rich progress bars.
        ledger: The stage's job ledger (default: opened in ``folder/.jobs`` with the
            fingerprint, started afresh when ``restart``).
    """

    config: PipelineConfig
    run_dir: Path
    folder: Path
    base: Path
    restart: bool
    fingerprint: str
    show_progress: bool = True
    ledger: JobLedger = field(init=False)

    def __post_init__(self) -> None:
        ledger = JobLedger.open(
            self.folder / JOBS_FOLDER,
            self.fingerprint,
            force=self.restart,
            owner=self.folder,
            what=f"{self.folder.name} stage",
        )
        object.__setattr__(self, "ledger", ledger)

    def run_jobs(self, jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
        """Run the stage's jobs without a marker, in order, in this process.

        Args:
            jobs: ``{job id: work}``; each work returns the job's JSON-serialisable result.

        Returns:
            ``{job id: result}`` of every job, including those finished by an earlier run.
        """
        self.ledger.run(lambda job_id: jobs[job_id](), list(jobs), str)
        return {job_id: self.ledger.result(job_id) for job_id in jobs}

    def stage_dir(self, stage: str) -> Path:
        """Folder of another stage of the same run.

        Args:
            stage: Stage name.

        Returns:
            Its folder.
        """
        return self.run_dir / stage


def run_simulate(ctx: StageContext) -> dict[str, Any]:
    """Simulate the scene pairs of ``simulate``."""
    from eo_mmcl.simulate import simulate_scenes

    config = ctx.config.simulate
    if config is None:
        raise ConfigError("simulate: the pipeline has no simulate section")

    def scene(index: int) -> Callable[[], Any]:
        def work() -> int:
            simulate_scenes(ctx.folder, config, ctx.restart, ctx.show_progress, indices=[index])
            return index

        return work

    done = ctx.run_jobs({f"scene-{i:02d}": scene(i) for i in range(config.scenes)})
    return {"scenes": len(done)}


def run_catalog(ctx: StageContext) -> dict[str, Any]:
    """Catalogue the simulated scenes or the configured sources."""
    from eo_mmcl.catalog import build_catalog, folder_source, resolve_source

    section = ctx.config.catalog
    if section.sources:
        sources = [resolve_source(ctx.base / s) for s in section.sources]
    else:
        sources = [folder_source(ctx.stage_dir("simulate"))]

    def work() -> dict[str, Any]:
        catalog = build_catalog(
            sources, ctx.folder, section.config, show_progress=ctx.show_progress
        )
        return {
            "rasters": len(catalog.rasters),
            "pairs": len(catalog.pairs),
            "rejected": len(catalog.rejected),
        }

    return dict(ctx.run_jobs({"catalog": work})["catalog"])


def run_tile(ctx: StageContext) -> dict[str, Any]:
    """Tile the catalog into the chip store (Dask distributed)."""
    from eo_mmcl.tile import tile_catalog

    section = ctx.config.tile

    def work() -> dict[str, Any]:
        # The store's own ledger (chunk jobs, on Dask) resumes a store killed midway.
        result = tile_catalog(
            ctx.stage_dir("catalog"),
            ctx.folder,
            section.config,
            workers=section.workers,
            scheduler=section.scheduler,
            force=ctx.restart,
            show_progress=ctx.show_progress,
        )
        return dict(result.manifest["counts"])

    return dict(ctx.run_jobs({"tile": work})["tile"])


def run_folder(train_dir: Path, objective: str, seed: int) -> Path:
    """Folder of one training run: ``train/<objective>/seed_<seed>``.

    Args:
        train_dir: The train stage's folder.
        objective: The objective.
        seed: The training seed.

    Returns:
        The folder (checkpoints, logs, config, done marker).
    """
    return train_dir / objective / f"seed_{seed}"


def training_run(ctx: StageContext, objective: str, seed: int) -> TrainingRun:
    """One training run, for LightningCLI's Python API.

    The objective's shipped config is read as it is; the pipeline's train settings go over it
    as typed values; the pipeline file's ``train.args`` and ``objective_args`` come last, as
    the command-line arguments they are written as. Logs and checkpoints follow
    ``trainer.default_root_dir``, here the run folder (:func:`run_folder`).

    Args:
        ctx: The train stage's context.
        objective: The objective.
        seed: The training seed (weights, views and the batch order).

    Returns:
        The run.
    """
    run = ctx.config.train.training_run(ctx.base, objective, seed)
    settings = dict(run.settings)
    settings["trainer"] = {
        **settings["trainer"],
        "default_root_dir": str(run_folder(ctx.folder, objective, seed)),
        "enable_progress_bar": ctx.show_progress,
    }
    settings["data"] = {**settings["data"], "chips_dir": str(ctx.stage_dir("tile"))}
    return replace(run, settings=settings)


def run_train(ctx: StageContext) -> dict[str, Any]:
    """Train every objective once per training seed; a killed stage resumes each run."""
    if ctx.ledger.fresh:
        for objective in ctx.config.train.objectives:
            shutil.rmtree(ctx.folder / objective, ignore_errors=True)

    def run(objective: str, seed: int) -> Callable[[], Any]:
        return lambda: _train_one(ctx, objective, seed)

    jobs = {
        f"{objective}.seed_{seed}": run(objective, seed)
        for objective in ctx.config.train.objectives
        for seed in ctx.config.train_seeds()
    }
    return {key.replace(".", "/", 1): value for key, value in ctx.run_jobs(jobs).items()}


def _train_one(ctx: StageContext, objective: str, seed: int) -> dict[str, Any]:
    """One objective at one seed (one job): resumed from ``last.ckpt`` when killed midway."""
    from eo_mmcl.objectives.train import check_training_args, run_training

    out_dir = run_folder(ctx.folder, objective, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = training_run(ctx, objective, seed)
    last = out_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("train: %s seed %d resumes from %s", objective, seed, last)
        run = replace(run, ckpt_path=str(last))
    # What the run will train for (objective_args may raise the oracle's epochs).
    epochs = check_training_args(run, f"train ({objective})").trainer.max_epochs
    log.info("train: %s seed %d (at most %s epochs)", objective, seed, epochs)
    start = time.perf_counter()
    cli = run_training(run)
    seconds = round(time.perf_counter() - start, 1)
    metrics = {
        k.replace("/", "_"): round(float(v), 5)
        for k, v in cli.trainer.callback_metrics.items()
        if k.endswith("loss") or k.endswith("balanced_accuracy")
    }
    summary: dict[str, Any] = {
        "epochs": cli.trainer.current_epoch,
        "seconds": seconds,
        **metrics,
    }
    callback = cli.trainer.checkpoint_callback
    best_path = getattr(callback, "best_model_path", "")  # a ModelCheckpoint's, if any
    best = Path(best_path) if best_path else None
    if best is not None and best.is_file():
        # Later stages read the epoch its checkpoint callback kept (lowest validation loss;
        # the oracle's best validation balanced accuracy): early stopping without cutting the
        # run short; `last.ckpt` stays for resuming.
        with atomic_output(out_dir / "checkpoints" / BEST_CHECKPOINT) as tmp:
            shutil.copyfile(best, tmp)
        summary["best_epoch_file"] = best.name
    return summary


def run_embed(ctx: StageContext) -> dict[str, Any]:
    """Export embedding COGs, STAC items, previews and chip tables for every objective.

    Each trained objective is exported from its first training seed's checkpoint.
    """
    from eo_mmcl.embed import export_embeddings

    section = ctx.config.embed
    trained = checkpoints(ctx.stage_dir("train"), ctx.config.train.objectives, ctx.config)
    chips_dir = ctx.stage_dir("tile") if "tile" in ctx.config.stages else None

    def export(objective: str) -> dict[str, Any]:
        given = section.checkpoints.get(objective)
        checkpoint = ctx.base / given if given is not None else trained[objective][0]
        log.info("embed: %s from %s", objective, checkpoint)
        # The export's own ledger (blocks, on Dask) resumes an export killed midway.
        result = export_embeddings(
            checkpoint,
            ctx.stage_dir("catalog"),
            ctx.folder / objective,
            section.config,
            chips_dir=chips_dir,
            workers=section.workers,
            scheduler=section.scheduler,
            force=ctx.restart,
            show_progress=ctx.show_progress,
        )
        return {
            "rasters": len(result.rasters),
            "previews": len(result.previews),
            "chip_tables": len(result.chip_tables),
        }

    def job(objective: str) -> Callable[[], Any]:
        return lambda: export(objective)

    return ctx.run_jobs({o: job(o) for o in ctx.config.embed_objectives()})


def run_probe(ctx: StageContext) -> dict[str, Any]:
    """Probe every task of the chip store on every trained objective's embeddings, every seed."""
    from eo_mmcl.probe.run import run_probes

    section = ctx.config.probe
    trained = checkpoints(ctx.stage_dir("train"), ctx.config.train.objectives, ctx.config)
    scenes = ctx.stage_dir("simulate") if "simulate" in ctx.config.stages else None

    def work() -> dict[str, Any]:
        result = run_probes(
            ctx.stage_dir("tile"),
            [path for paths in trained.values() for path in paths],
            ctx.folder,
            section.config,
            scenes_dir=scenes,
            force=ctx.restart,
            log=log.info,
        )
        table = result.table
        return {"rows": len(table), "objectives": int(table["objective"].nunique())}

    return dict(ctx.run_jobs({"probe": work})["probe"])


def run_report(ctx: StageContext) -> dict[str, Any]:
    """Write the report (Markdown, self-contained HTML, figures) from the probe stage."""
    from eo_mmcl.report import build_report

    embed = ctx.stage_dir("embed")
    previews = sorted(p for p in embed.iterdir() if p.is_dir()) if embed.is_dir() else []

    def work() -> dict[str, Any]:
        html = build_report(ctx.stage_dir("probe"), ctx.folder, embed_dirs=previews)
        return {"report": str(html)}

    return dict(ctx.run_jobs({"report": work})["report"])


def checkpoints(
    train_dir: Path, objectives: list[str], config: PipelineConfig
) -> dict[str, list[Path]]:
    """The checkpoints each trained objective hands on, one per training seed.

    Per run: ``best.ckpt`` (the epoch its checkpoint callback kept), else ``last.ckpt``.

    Args:
        train_dir: The train stage's folder.
        objectives: Objectives trained.
        config: The pipeline (its training seeds).

    Returns:
        ``{objective: [path per seed, in seed order]}``.
    """
    out: dict[str, list[Path]] = {}
    for objective in objectives:
        out[objective] = []
        for seed in config.train_seeds():
            folder = run_folder(train_dir, objective, seed) / "checkpoints"
            best = folder / BEST_CHECKPOINT
            out[objective].append(best if best.is_file() else folder / "last.ckpt")
    return out


def outputs_of(stage: str, ctx: StageContext) -> list[Path]:
    """The files a stage hands on (digested into its manifest and downstream fingerprints).

    Args:
        stage: Stage name.
        ctx: The stage's context.

    Returns:
        Files or folders.
    """
    if stage == "train":
        trained = checkpoints(ctx.folder, ctx.config.train.objectives, ctx.config)
        return [path for paths in trained.values() for path in paths]
    return [ctx.folder]


#: Stage functions by name.
STAGE_FUNCTIONS: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "simulate": run_simulate,
    "catalog": run_catalog,
    "tile": run_tile,
    "train": run_train,
    "embed": run_embed,
    "probe": run_probe,
    "report": run_report,
}
