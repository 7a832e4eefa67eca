"""Misalignment studies: the pipeline over a sweep of one simulator knob, survival against it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.pipeline.config import PipelineConfig, load_pipeline_config, validate_pipeline
from eo_mmcl.probe.run import PROBE_TABLE
from eo_mmcl.probe.survival import best_per_group, summarise

#: Knobs a misalignment study can sweep: the simulator field and the bias it stands for.
KNOBS = {
    "cloud-fraction": ("cloud_fraction", "selection bias"),
    "change-fraction": ("change_fraction", "perturbation bias"),
}
STUDY_TABLE = "study.parquet"


#: Stages a study runs per knob value (no rasters: the probes read the chip store).
STUDY_STAGES = ("simulate", "catalog", "tile", "train", "probe")


@dataclass
class StudyConfig:
    """A sweep of one simulator knob over a base pipeline.

    Every value runs the base pipeline (``eo-mmcl run``'s stages, manifests and resume) with
    the knob set, so a study uses exactly the demo's (or any pipeline's) backbone, chips and
    probes; the options below override the base where given.

    Args:
        knob: ``cloud-fraction`` or ``change-fraction``.
        values: Knob values.
        pipeline: Base pipeline file (``pipelines/demo.yaml`` by default); it must simulate.
        objectives: Objectives to train (``supervised`` is added: it is the oracle); None:
            the base's.
        epochs: Training epochs per objective; None: the base's.
        size: Scene size in pixels; None: the base's.
        scenes: Scene pairs per value; None: the base's.
        seeds: Probe seeds; None: the base's.
        configs_dir: Folder of the training configs; None: the base's.
    """

    knob: str = "cloud-fraction"
    values: tuple[float, ...] = (0.0, 0.3, 0.6)
    pipeline: Path = Path("pipelines/demo.yaml")
    objectives: tuple[str, ...] | None = None
    epochs: int | None = None
    size: int | None = None
    scenes: int | None = None
    seeds: int | None = None
    configs_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.knob not in KNOBS:
            raise ConfigError(f"unknown knob {self.knob!r}; expected one of {sorted(KNOBS)}")
        if not self.values:
            raise ConfigError("give at least one knob value")

    def pipeline_for(self, value: float, run_dir: Path) -> PipelineConfig:
        """The base pipeline with the knob set to ``value``, the overrides, and ``run_dir``.

        Args:
            value: The knob value.
            run_dir: Run folder of this value.

        Returns:
            The validated pipeline config.

        Raises:
            ConfigError: If the base file is invalid or has no simulate section, or an
                override is refused (with the key's path, as ``eo-mmcl run`` reports it).
        """
        base = load_pipeline_config(self.pipeline)
        if base.simulate is None:
            raise ConfigError(f"{self.pipeline}: a study sweeps the simulator; no simulate section")
        raw: dict[str, Any] = base.model_dump(mode="json")
        raw["name"] = f"{base.name}-{self.knob}={value:g}"
        raw["run_dir"] = str(run_dir)
        raw["stages"] = list(STUDY_STAGES)
        raw["simulate"][KNOBS[self.knob][0]] = value
        for key, override in (("size", self.size), ("scenes", self.scenes)):
            if override is not None:
                raw["simulate"][key] = override
        train = raw["train"]
        if self.objectives is not None:
            train["objectives"] = ["supervised", *[o for o in self.objectives if o != "supervised"]]
        elif "supervised" not in train["objectives"]:
            train["objectives"] = ["supervised", *train["objectives"]]
        if self.epochs is not None:
            train["max_epochs"] = self.epochs
        if self.configs_dir is not None:
            train["configs"] = str(self.configs_dir)
        train["objective_args"] = {
            o: a for o, a in train["objective_args"].items() if o in train["objectives"]
        }
        if self.seeds is not None:
            raw["probe"]["config"]["seeds"] = self.seeds
        return validate_pipeline(raw, f"{self.pipeline} with the study's overrides")


def run_misalignment_study(
    out_dir: str | Path,
    config: StudyConfig,
    log: Callable[[str], None] = lambda m: None,
    base: Path | None = None,
) -> pd.DataFrame:
    """Run the base pipeline for every knob value; tabulate and plot survival.

    Every value gets its own run folder ``<knob>=<value>/`` with the pipeline's stage folders
    (``simulate/``, ``catalog/``, ``tile/``, ``train/``, ``probe/``) and manifests, so a killed
    study resumes and a finished value is skipped. Writes ``study.parquet``/``study.csv``
    (best probe's mean survival per objective, group and value) and ``study.png``.

    Args:
        out_dir: Study folder.
        config: The sweep.
        log: Progress messages.
        base: Folder the pipeline's relative paths resolve against (default: the working
            directory, as for ``eo-mmcl run``).

    Returns:
        The study table.

    Raises:
        ConfigError: If the base pipeline or an override is invalid (before any work).
    """
    from eo_mmcl.pipeline import run_pipeline

    out = Path(out_dir).resolve()
    _, bias = KNOBS[config.knob]
    # Every value's config is validated (paths included) before the first one runs.
    runs = {v: config.pipeline_for(v, out / f"{config.knob}={v:g}") for v in config.values}
    for pipeline in runs.values():
        pipeline.check_paths(base or Path.cwd())
    frames = []
    for value, pipeline in runs.items():
        log(f"{config.knob}={value:g}: {' -> '.join(pipeline.stages)} in {pipeline.run_dir}")
        run_pipeline(pipeline, base=base, show_progress=False)
        table = pd.read_parquet(Path(pipeline.run_dir) / "probe" / PROBE_TABLE)
        summary = summarise(table)
        # Every objective and group keeps a row, NaN where no ratio is defined (the oracle at
        # chance): a missing point in the plot, not a value silently left out of the table.
        pairs = summary[["objective", "group"]].drop_duplicates()
        best = pairs.merge(best_per_group(summary), on=["objective", "group"], how="left")
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
