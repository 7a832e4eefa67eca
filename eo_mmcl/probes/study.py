"""Misalignment studies: the pipeline over a sweep of one simulator knob, survival against it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.probes.run import ProbeConfig, run_probes
from eo_mmcl.probes.survival import best_per_group, summarise

#: Knobs a misalignment study can sweep: the simulator field and the bias it stands for.
KNOBS = {
    "cloud-fraction": ("cloud_fraction", "selection bias"),
    "change-fraction": ("change_fraction", "perturbation bias"),
}
STUDY_TABLE = "study.parquet"


@dataclass
class StudyConfig:
    """A sweep of one simulator knob.

    Args:
        knob: ``cloud-fraction`` or ``change-fraction``.
        values: Knob values.
        objectives: Objectives to train (``supervised`` is added: it is the oracle).
        epochs: Training epochs per objective.
        size: Scene size in pixels.
        scenes: Scene pairs per value.
        chip_size: Chip size in pixels.
        split_block: Side of a split block in chips (small scenes need small blocks so that
            every split gets chips).
        max_cloud: Largest cloud fraction of a kept chip (the tiler's selection).
        seeds: Probe seeds.
        configs_dir: Folder of the training configs (``pipelines/configs``).
    """

    knob: str = "cloud-fraction"
    values: tuple[float, ...] = (0.0, 0.3, 0.6)
    objectives: tuple[str, ...] = ("clip", "cross_self", "coral")
    epochs: int = 10
    size: int = 512
    scenes: int = 2
    chip_size: int = 32
    split_block: int = 4
    max_cloud: float = 0.1
    seeds: int = 3
    configs_dir: Path = Path("pipelines/configs")

    def __post_init__(self) -> None:
        if self.knob not in KNOBS:
            raise ConfigError(f"unknown knob {self.knob!r}; expected one of {sorted(KNOBS)}")
        if not self.values:
            raise ConfigError("give at least one knob value")
        for objective in ("supervised", *self.objectives):
            if not (self.configs_dir / f"{objective}.yaml").exists():
                raise ConfigError(f"{self.configs_dir}: no training config {objective}.yaml")


def run_misalignment_study(
    out_dir: str | Path, config: StudyConfig, log: Callable[[str], None] = lambda m: None
) -> pd.DataFrame:
    """Simulate, tile, train, probe for every knob value; tabulate and plot survival.

    Every value gets its own folder ``<knob>=<value>/`` (scenes, catalog, chips, train,
    probes); each stage is skipped where its output is already complete, so a killed study
    resumes. Writes ``study.parquet``/``study.csv`` (best probe's mean survival per objective,
    group and value) and ``study.png``.

    Args:
        out_dir: Study folder.
        config: The sweep.
        log: Progress messages.

    Returns:
        The study table.
    """
    from eo_mmcl.catalog import build_catalog, folder_source
    from eo_mmcl.simulate import SimulationConfig, simulate_scenes
    from eo_mmcl.tasks.train import run_training
    from eo_mmcl.tiling import TileConfig, tile_catalog

    out = Path(out_dir)
    field, bias = KNOBS[config.knob]
    frames = []
    objectives = ("supervised", *[o for o in config.objectives if o != "supervised"])
    for value in config.values:
        root = out / f"{config.knob}={value:g}"
        log(f"{config.knob}={value:g}: simulate, catalog, tile")
        sim = SimulationConfig(size=config.size, seed=0, scenes=config.scenes)
        if field == "cloud_fraction":
            sim = dataclasses.replace(sim, cloud_fraction=value)
        else:
            sim = dataclasses.replace(sim, change_fraction=value)
        simulate_scenes(root / "scenes", sim, show_progress=False)
        if not (root / "catalog" / "pairs.parquet").exists():
            build_catalog([folder_source(root / "scenes")], root / "catalog", show_progress=False)
        tile_catalog(
            root / "catalog",
            root / "chips",
            TileConfig(
                chip_size=config.chip_size,
                split_block=config.split_block,
                max_cloud=config.max_cloud,
            ),
            workers=0,
            show_progress=False,
        )
        checkpoints = []
        for objective in objectives:
            ckpt_dir = root / "train" / objective / "checkpoints"
            if not (ckpt_dir / "last.ckpt").exists():
                log(f"{config.knob}={value:g}: train {objective}")
                run_training(
                    ["--config", str(config.configs_dir / f"{objective}.yaml"),
                     "--data.chips_dir", str(root / "chips"),
                     "--trainer.max_epochs", str(config.epochs),
                     "--trainer.default_root_dir", str(root / "train" / objective),
                     "--trainer.logger", "false",
                     "--trainer.enable_progress_bar", "false",
                     "--trainer.callbacks.dirpath", str(ckpt_dir),
                     "--data.batch_size", "32"]
                )  # fmt: skip
            checkpoints.append(ckpt_dir / "last.ckpt")
        log(f"{config.knob}={value:g}: probe")
        run = run_probes(
            root / "chips", checkpoints, root / "probes", ProbeConfig(seeds=config.seeds)
        )
        best = best_per_group(summarise(run.table))
        best.insert(0, "knob", config.knob)
        best.insert(1, "value", value)
        frames.append(best)
    table = pd.concat(frames, ignore_index=True)
    with atomic_output(out / "study.csv") as tmp:
        table.to_csv(tmp, index=False)
    _plot(table, f"{config.knob} ({bias})", out / "study.png")
    with atomic_output(out / STUDY_TABLE) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def _plot(table: pd.DataFrame, label: str, path: Path) -> None:
    """Survival (best probe, mean over seeds, std as error bars) against the knob per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(table["group"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3), squeeze=False)
    for ax, group in zip(axes[0], groups, strict=True):
        rows = table[table["group"] == group]
        for objective, line in rows.groupby("objective", sort=False):
            line = line.sort_values("value")
            ax.errorbar(
                line["value"], line["survival_mean"], yerr=line["survival_std"], label=objective,
                marker="o", capsize=2,
            )  # fmt: skip
        ax.set_title(group)
        ax.set_xlabel(label)
        ax.axhline(1, color="k", lw=0.6, ls="--")
    axes[0][0].set_ylabel("survival")
    axes[0][-1].legend(fontsize=7)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def parse_values(text: str) -> Sequence[float]:
    """Comma-separated knob values.

    Args:
        text: e.g. ``"0,0.3,0.6"``.

    Returns:
        The values.

    Raises:
        ConfigError: If a value is not a number in [0, 1].
    """
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"--values {text!r}: expected comma-separated numbers") from err
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ConfigError(f"--values {text!r}: expected fractions in [0, 1]")
    return values
