"""The pipeline file (``PIPELINE.yaml``): one validated config for every stage of a batch run.

Validation uses pydantic over the stages' own config dataclasses (``SimulationConfig``,
``TileConfig``), so an unknown key, a wrong type or a value a stage refuses is reported with the
key's path (``tile.chip_size: ...``) before any work starts.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from eo_mmcl.catalog.config import CatalogConfig
from eo_mmcl.embed.config import EmbedConfig
from eo_mmcl.errors import ConfigError
from eo_mmcl.probe.config import ProbeConfig
from eo_mmcl.simulate import SimulationConfig
from eo_mmcl.tile import TileConfig

if TYPE_CHECKING:
    from eo_mmcl.objectives.train import TrainingRun

#: A stage's name; ``--from``/``--until``/``--force`` take these.
StageName = Literal["simulate", "catalog", "tile", "train", "embed", "probe", "report"]

log = logging.getLogger(__name__)

#: The catalog options that older pipeline files give directly under ``catalog``.
CATALOG_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(CatalogConfig))

#: Stages in the order they run.
STAGES: tuple[StageName, ...] = get_args(StageName)


class _Section(BaseModel):
    """A config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class CatalogSection(_Section):
    """Options of the catalog stage (``eo-mmcl catalog``).

    ``max_days``, ``min_overlap_km2`` and ``allow_unpaired`` directly under ``catalog`` (the
    layout before ``catalog.config``) are still read, with a deprecation notice.

    Args:
        sources: Folders or source definition YAMLs; empty means the simulate stage's scenes.
        config: ``CatalogConfig`` fields (max_days, min_overlap_km2, allow_unpaired).
    """

    sources: list[Path] = Field(default_factory=list)
    config: CatalogConfig = Field(default_factory=CatalogConfig)

    @model_validator(mode="before")
    @classmethod
    def _config_keys_at_the_top(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        legacy = {k: data[k] for k in CATALOG_CONFIG_FIELDS if k in data}
        if not legacy:
            return data
        log.warning(
            "catalog.%s: deprecated place, write catalog.config.%s",
            ", catalog.".join(legacy),
            ", catalog.config.".join(legacy),
        )
        rest = {k: v for k, v in data.items() if k not in legacy}
        given = rest.get("config") or {}
        if not isinstance(given, dict):
            return data  # pydantic names the type error
        return {**rest, "config": {**legacy, **given}}


class TileSection(_Section):
    """Options of the tile stage: the chip store's geometry plus where the windows run.

    Args:
        config: ``TileConfig`` fields (chip size, stride, nodata/cloud limits, split blocks).
        workers: Dask LocalCluster workers (None: one per CPU; 0: in-process).
        scheduler: Address of an existing Dask scheduler (overrides ``workers``).
    """

    config: TileConfig = Field(default_factory=TileConfig)
    workers: int | None = None
    scheduler: str | None = None


class TrainSection(_Section):
    """Options of the train stage: which objectives, and the Lightning settings they share.

    Args:
        objectives: Objectives to train, each from ``<configs>/<objective>.yaml``.
        configs: Folder of the LightningCLI configs.
        max_epochs: Epochs of every objective.
        batch_size: Batch size of every objective.
        num_workers: DataLoader workers.
        accelerator: Lightning accelerator (``auto`` takes a GPU where there is one).
        devices: Lightning devices.
        num_nodes: Lightning nodes (multi-node DDP under torchrun or SLURM).
        strategy: Lightning strategy (``ddp`` for several devices).
        args: Extra LightningCLI arguments for every objective.
        objective_args: Extra LightningCLI arguments per objective.
        seeds: Training seeds: every objective (the oracle included) is trained once per seed,
            into ``train/<objective>/seed_<s>/``, and the probes' error bars come from them.
            None: the pipeline's ``seed`` alone.
    """

    objectives: list[str] = Field(default_factory=lambda: ["clip", "coral"])
    seeds: list[int] | None = None
    configs: Path = Path("pipelines/configs")
    max_epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=32, ge=2)
    num_workers: int = Field(default=0, ge=0)
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(default=1, ge=1)
    strategy: str = "auto"
    args: list[str] = Field(default_factory=list)
    objective_args: dict[str, list[str]] = Field(default_factory=dict)

    def training_run(self, base: Path, objective: str, seed: int) -> TrainingRun:
        """One objective's run at one seed with this section's settings (no paths yet).

        The train stage adds the run folder and the chip store; the pipeline's check before
        any stage runs parses this run as it is.

        Args:
            base: Folder that ``configs`` is relative to.
            objective: The objective.
            seed: The training seed (weights, views and the batch order).

        Returns:
            The run: the objective's config, these settings over it, then ``args`` and the
            objective's ``objective_args``.
        """
        from eo_mmcl.objectives.train import TrainingRun  # torch: only when needed

        settings = {
            "seed_everything": seed,
            "trainer": {
                "max_epochs": self.max_epochs,
                "accelerator": self.accelerator,
                "devices": self.devices,
                "num_nodes": self.num_nodes,
                "strategy": self.strategy,
            },
            "data": {
                "seed": seed,
                "batch_size": self.batch_size,
                "num_workers": self.num_workers,
            },
        }
        return TrainingRun(
            config=base / self.configs / f"{objective}.yaml",
            settings=settings,
            overrides=(*self.args, *self.objective_args.get(objective, [])),
        )

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one seed (or leave train.seeds out)")
        if len(set(value)) != len(value) or min(value) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {value}")
        return value

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: list[str]) -> list[str]:
        from eo_mmcl.objectives import OBJECTIVES  # heavy import, only when a config names them

        unknown = sorted(set(value) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"unknown objective(s) {unknown}; known: {sorted(OBJECTIVES)}")
        if not value:
            raise ValueError("at least one objective is needed")
        return value


class EmbedSection(_Section):
    """Options of the embed stage (``eo-mmcl embed``) for every trained objective.

    Args:
        config: ``EmbedConfig`` fields (modality, stride, window, step, dtype, preview).
        objectives: Objectives to export (default: every trained one).
        checkpoints: Checkpoints to export instead of (or without) the train stage's, by
            objective name, e.g. to embed a real scene with encoders of another run.
        workers: Dask LocalCluster workers (None: one per CPU; 0: in-process).
        scheduler: Address of an existing Dask scheduler (overrides ``workers``).
    """

    config: EmbedConfig = Field(default_factory=EmbedConfig)
    objectives: list[str] | None = None
    checkpoints: dict[str, Path] = Field(default_factory=dict)
    workers: int | None = None
    scheduler: str | None = None


class ProbeSection(_Section):
    """Options of the probe stage (``eo-mmcl probe``) over every trained objective.

    Args:
        config: ``ProbeConfig`` fields (seeds, probes, train_fraction, keys, random_init, ...).
    """

    config: ProbeConfig = Field(default_factory=ProbeConfig)


class ReportSection(_Section):
    """Options of the report stage (``eo-mmcl report``): none yet.

    The report reads the probe stage and the embed stage's previews; a key here is a typo
    (the section used to take any mapping and ignore it).
    """


class PipelineConfig(_Section):
    """The whole batch run.

    Args:
        name: Name of the run (for logs and the report).
        run_dir: Folder of the run: one sub-folder per stage.
        seed: Seed of every stage that draws random numbers.
        simulate: Simulator settings; None when ``catalog.sources`` names real data.
        catalog: Catalog stage options.
        tile: Tile stage options.
        train: Train stage options.
        embed: Embed stage options.
        probe: Probe stage options.
        report: Report stage options (none yet).
        stages: Stages this pipeline runs (a prefix of the full chain for partial pipelines).
    """

    name: str = "eo_mmcl"
    run_dir: Path = Path("runs/eo_mmcl")
    seed: int = 0
    simulate: SimulationConfig | None = None
    catalog: CatalogSection = Field(default_factory=CatalogSection)
    tile: TileSection = Field(default_factory=TileSection)
    train: TrainSection = Field(default_factory=TrainSection)
    embed: EmbedSection = Field(default_factory=EmbedSection)
    probe: ProbeSection = Field(default_factory=ProbeSection)
    report: ReportSection = Field(default_factory=ReportSection)
    stages: list[StageName] = Field(default_factory=lambda: list(STAGES))

    def _check_training_args(self, base: Path) -> None:
        """Parse each objective's config with ``train.args`` as LightningCLI will (no build).

        Raises:
            ConfigError: Naming the key and LightningCLI's complaint.
        """
        from eo_mmcl.objectives.train import check_training_args  # torch: only when needed

        for objective in self.train.objectives:
            extra = self.train.objective_args.get(objective, [])
            key = f"train.objective_args.{objective}" if extra else "train.args"
            run = self.train.training_run(base, objective, self.seed)
            check_training_args(run, f"{key} ({objective})")

    def check_paths(self, base: Path) -> None:
        """Check that every input path exists (before any work starts).

        Args:
            base: Folder relative paths are resolved against (the working directory).

        Raises:
            ConfigError: Naming the key and the missing path.
            SourceError: If a checkpoint of ``embed.checkpoints`` is unusable or unsafe.
        """
        if self.simulate is None and not self.catalog.sources and "catalog" in self.stages:
            raise ConfigError("catalog.sources: no sources and no simulate section")
        for i, source in enumerate(self.catalog.sources):
            if not (base / source).exists():
                raise ConfigError(f"catalog.sources[{i}]: {source} does not exist")
        if "train" in self.stages:
            for objective in self.train.objectives:
                path = base / self.train.configs / f"{objective}.yaml"
                if not path.is_file():
                    raise ConfigError(f"train.configs: {path} does not exist")
            unknown = sorted(set(self.train.objective_args) - set(self.train.objectives))
            if unknown:
                raise ConfigError(f"train.objective_args: objectives {unknown} are not trained")
            self._check_training_args(base)
        if "embed" in self.stages:
            from eo_mmcl.objectives.checkpoint import checkpoint_meta  # torch: only when needed

            for name, path in self.embed.checkpoints.items():
                if not (base / path).is_file():
                    raise ConfigError(f"embed.checkpoints.{name}: {path} does not exist")
                # Read with the weights-only unpickler before any stage runs: a checkpoint
                # that is no eo_mmcl checkpoint, or could run code, stops the run here.
                checkpoint_meta(base / path)
            trained = set(self.train.objectives) if "train" in self.stages else set()
            available = trained | set(self.embed.checkpoints)
            missing = sorted(set(self.embed_objectives()) - available)
            if missing:
                raise ConfigError(
                    f"embed.objectives: {missing} are neither trained nor in embed.checkpoints"
                )

        needs_oracle = "probe" in self.stages and "train" in self.stages
        if needs_oracle and "supervised" not in self.train.objectives:
            raise ConfigError("train.objectives: the probe stage needs the `supervised` oracle")

    def train_seeds(self) -> list[int]:
        """The training seeds: ``train.seeds``, else the pipeline's ``seed``."""
        return list(self.train.seeds) if self.train.seeds is not None else [self.seed]

    def embed_objectives(self) -> list[str]:
        """Objectives the embed stage exports (default: trained ones and given checkpoints)."""
        if self.embed.objectives is not None:
            return list(self.embed.objectives)
        trained = self.train.objectives if "train" in self.stages else []
        return list(dict.fromkeys([*trained, *self.embed.checkpoints]))


def _key_path(location: tuple[int | str, ...]) -> str:
    """``('tile', 'config', 'chip_size')`` -> ``tile.config.chip_size``; list items as ``[i]``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline file.

    Args:
        path: The YAML file.

    Returns:
        The validated config.

    Raises:
        ConfigError: If the file is missing or not YAML, or any key is unknown, of the wrong
            type or refused, with the file name and every offending key's path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pipeline file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return validate_pipeline(raw, str(path))


def validate_pipeline(raw: dict[str, Any], origin: str) -> PipelineConfig:
    """Validate a pipeline given as a mapping (a parsed file, or one built by a study).

    Args:
        raw: The sections.
        origin: What to name in errors (the file, or the file and what changed it).

    Returns:
        The validated config.

    Raises:
        ConfigError: If any key is unknown, of the wrong type or refused, with ``origin`` and
            every offending key's path.
    """
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{_key_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from err
