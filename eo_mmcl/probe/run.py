"""``eo-mmcl probe``: embed a chip store under each checkpoint, probe every task, write a table."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl import __version__
from eo_mmcl.embed.predict import check_accelerator
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.digest import json_digest, sha256_file
from eo_mmcl.io.jobs import read_record, write_record
from eo_mmcl.objectives import Objective
from eo_mmcl.objectives.checkpoint import check_fits_store, checkpoint_meta, read_checkpoint
from eo_mmcl.probe.collect import Collector
from eo_mmcl.probe.config import ProbeConfig
from eo_mmcl.probe.embeddings import (
    extract_embeddings,
    find_embedding_tables,
    load_objective,
    random_init_like,
    write_embedding_table,
)
from eo_mmcl.probe.instrument import instrument_table
from eo_mmcl.probe.progress import ProbeJobs
from eo_mmcl.probe.references import (
    named_floors,
    probe_band_statistics,
    probe_floors,
    probe_tables,
)
from eo_mmcl.probe.survival import CEILING_NOTE, ORACLE, add_survival
from eo_mmcl.probe.tasks import ChipLabels, load_chip_labels
from eo_mmcl.probe.truth import truth_ceilings

PROBE_TABLE = "probes.parquet"
PROBE_CSV = "probes.csv"
INSTRUMENT_TABLE = "instrument.parquet"
INSTRUMENT_CSV = "instrument.csv"
META_FILE = "probe_meta.json"
PREDICTIONS_FILE = "predictions.parquet"
SEGMENTATION_FILE = "segmentation.npz"
LABELS_FILE = "labels.npz"
CHIPS_FILE = "chips.parquet"


@dataclass
class ProbeRun:
    """Result of :func:`run_probes`.

    Args:
        table: The tidy probe table (also written).
        out_dir: Where it was written.
        reused: True when a finished run with the same inputs was found.
        seconds: Wall time of the probing (0 when reused).
    """

    table: pd.DataFrame
    out_dir: Path
    reused: bool = False
    seconds: float = 0.0


def _fingerprint(
    chips_dir: Path, checkpoints: Sequence[Path], embeddings_dir: Path | None, config: ProbeConfig
) -> str:
    # Contents, not modification times: a touched file changes nothing, a rewritten one does.
    parts: list[Any] = [__version__, str(chips_dir.resolve()), config.__dict__]
    for path in [*checkpoints, chips_dir / "tile_manifest.json"]:
        parts.append([str(path.resolve()), sha256_file(path)])
    if embeddings_dir is not None:
        tables = find_embedding_tables(embeddings_dir)
        parts += [[str(t.path), sha256_file(t.path)] for t in tables]
    return json_digest(parts)


def _weights_hash(model: Objective) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _checkpoint_info(path: Path, model: Objective, train_seed: int) -> dict[str, Any]:
    raw = read_checkpoint(path)
    # Scalars, and the timm arguments of the backbone (a dict) that a reader needs to rebuild it.
    hparams = {
        k: v
        for k, v in dict(model.hparams).items()
        if isinstance(v, int | float | str) or k == "backbone_kwargs"
    }
    return {
        "path": str(path),
        "objective": model.objective,
        "train_seed": train_seed,
        "epoch": int(raw.get("epoch", -1)),
        "global_step": int(raw.get("global_step", -1)),
        "hparams": hparams,
    }


def _simulator_settings(scenes_dir: Path | None) -> list[dict[str, Any]]:
    if scenes_dir is None:
        return []
    found = sorted(Path(scenes_dir).glob("*_truth.json"))
    if not found:
        raise SourceError(f"{scenes_dir}: no simulator sidecar (*_truth.json) found")
    settings = []
    for path in found:
        truth = json.loads(path.read_text())
        settings.append(
            {
                "scene": truth.get("scene_id", path.stem),
                "config": truth.get("config", {}),
                "realised": truth.get("realised", {}),
            }
        )
    return settings


def _training_seeds(models: Sequence[tuple[Path, Objective]]) -> list[int]:
    """The training seed of each checkpoint: its own record, else its rank among its objective's.

    Raises:
        ConfigError: If two checkpoints of one objective have the same training seed.
    """
    seeds: list[int] = []
    seen: dict[tuple[str, int], Path] = {}
    runs: dict[str, int] = {}
    for path, model in models:
        run = runs.get(model.objective, 0)
        runs[model.objective] = run + 1
        seed = int(model.data_meta.get("train_seed", run))
        other = seen.get((model.objective, seed))
        if other is not None:
            raise ConfigError(
                f"{path}: training seed {seed} of {model.objective!r} is also that of {other}; "
                "give one checkpoint per objective and training seed"
            )
        seen[(model.objective, seed)] = path
        seeds.append(seed)
    return seeds


def run_probes(
    chips_dir: str | Path,
    checkpoints: Sequence[str | Path],
    out_dir: str | Path,
    config: ProbeConfig | None = None,
    embeddings_dir: str | Path | None = None,
    scenes_dir: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> ProbeRun:
    """Probe every task of a chip store on the embeddings of every checkpoint.

    Per checkpoint (one per objective and training seed), per untrained copy of each
    architecture (the random-init floor, its weights drawn from each training seed) and for the
    band-statistics reference: chip embeddings at the backbone and projection depths, dense
    feature maps, then the linear, kNN and segmentation probes of every task, once per probe
    seed (the probes' train subsample, nested inside the training seed). The references (the
    ``supervised`` oracle and band statistics) are also probed on each sensor alone, for the
    instrument's wrong-sensor check. Writes into ``out_dir``:
    ``probes.parquet`` and ``probes.csv`` (the tidy table), ``instrument.parquet`` and
    ``instrument.csv`` (per task: chance, ceiling, wrong-sensor score, floor, readability),
    ``probe_meta.json`` (settings, data sizes, checkpoints), ``predictions.parquet`` (test
    predictions of each objective's first set, probe seed 0), ``segmentation.npz`` (its test
    maps), ``labels.npz`` and ``chips.parquet`` (truth and chip positions for the report's maps)
    and ``embeddings/<objective>__<depth>.parquet`` (per-chip embeddings of the first set,
    GeoParquet). The table is written last: its presence means done.

    Args:
        chips_dir: Chip store folder.
        checkpoints: Checkpoints of ``eo-mmcl train``, one per objective and training seed
            (the seed is read from the checkpoint; without one, the order of an objective's
            checkpoints numbers them).
        out_dir: Output folder.
        config: What to probe.
        embeddings_dir: Optional folder of per-chip embedding tables
            ``<objective>__<depth>.parquet`` (columns ``store_index``, ``embedding``) probed as
            extra rows, e.g. tables written by an earlier run or another exporter.
        scenes_dir: Optional simulator output folder: its sidecars go into the settings and
            give the instrument's truth ceiling.
        force: Probe again even if a finished run with the same inputs exists.
        log: Progress messages.

    Returns:
        The run.

    Raises:
        ConfigError: If nothing is given to probe, no ``supervised`` oracle is present, two
            checkpoints of one objective share a training seed, or a checkpoint's bands,
            chip size or normalisation do not fit the store.
        SourceError: If an input is unusable.
    """
    config = config or ProbeConfig()
    chips = Path(chips_dir)
    out = Path(out_dir)
    paths = [Path(p) for p in checkpoints]
    if not paths and embeddings_dir is None:
        raise ConfigError("give at least one --checkpoint (or --embeddings)")
    for path in paths:
        if not path.is_file():
            raise SourceError(f"{path}: checkpoint not found")
    labels = load_chip_labels(chips)
    for path in paths:
        # Before any embedding: a checkpoint trained on other bands (B10 for B11) or chips
        # would be probed and scored as if it read this store.
        check_fits_store(path, checkpoint_meta(path), chips)
    check_accelerator(config.accelerator)
    fingerprint = _fingerprint(
        chips, paths, Path(embeddings_dir) if embeddings_dir else None, config
    )
    finished = read_record(out / META_FILE, fingerprint) is not None
    if finished and not force and (out / PROBE_TABLE).exists():
        return ProbeRun(pd.read_parquet(out / PROBE_TABLE), out, reused=True)
    start = time.perf_counter()
    store_index = labels.store_index
    collector = Collector(labels, config)
    embedding_dir = out / "embeddings"
    models = [(path, load_objective(path)) for path in paths]
    train_seeds = _training_seeds(models)
    floor_seeds = sorted({t for (_, k), t in zip(models, train_seeds, strict=True)
                          if k.objective != ORACLE}) or [0]  # fmt: skip
    checkpoint_info: list[dict[str, Any]] = []
    floors: dict[str, tuple[Objective, str]] = {}
    runs: dict[str, int] = {}
    jobs = ProbeJobs.open(out, fingerprint, collector, force)
    for index, ((path, model), train_seed) in enumerate(zip(models, train_seeds, strict=True)):
        checkpoint_info.append(_checkpoint_info(path, model, train_seed))
        objective = model.objective
        run = runs.get(objective, 0)
        runs[objective] = run + 1
        # One floor per distinct untrained network, oracle excluded: the floor of an objective
        # is its own network, untrained (clip and cross_self share theirs: same modules, same
        # seed, hence the same weights).
        arch_key = _weights_hash(random_init_like(model, 0))
        if objective != ORACLE and config.random_init and arch_key not in floors:
            floors[arch_key] = (model, objective)
        floor_name = floors[arch_key][1] if arch_key in floors else ""
        checkpoint = _CheckpointJob(path, model, run, train_seed, floor_name)
        jobs.run(
            f"checkpoint-{index:03d}",
            functools.partial(checkpoint.probe, chips, labels, collector, config, out, log),
        )
    all_seeds = sorted(set(train_seeds)) or [0]
    if config.reference:
        jobs.run(
            "band-stats",
            lambda: probe_band_statistics(chips, store_index, all_seeds, collector, log),
        )
    if embeddings_dir is not None:
        tables = Path(embeddings_dir)
        jobs.run("tables", lambda: probe_tables(tables, store_index, collector, log))
    jobs.run(
        "floors",
        lambda: probe_floors(
            floors, floor_seeds, chips, store_index, config, collector, embedding_dir, log
        ),
    )
    raw = named_floors(pd.DataFrame(collector.rows), floors)
    table = add_survival(raw)
    truth = truth_ceilings(labels, Path(scenes_dir)) if scenes_dir else {}
    instrument = instrument_table(table, truth)
    seconds = time.perf_counter() - start
    _write_outputs(out, labels, table, collector, instrument)
    meta = {
        "chips_dir": str(chips),
        "splits": labels.split_counts(),
        "chip_size": next((int(p.shape[-1]) for p in labels.pixel.values()), None),
        "tasks": {t.name: {"group": t.group, "num_classes": t.num_classes, "kind": t.kind,
                           "class_names": list(t.class_names)} for t in labels.tasks.values()},
        "tile_config": labels.metadata.get("tile_config", {}),
        "checkpoints": checkpoint_info,
        "train_seeds": all_seeds,
        "embeddings_dir": str(embeddings_dir) if embeddings_dir else None,
        "config": {**config.__dict__, "probes": list(config.probes)},
        "simulator": _simulator_settings(Path(scenes_dir) if scenes_dir else None),
        "floors": sorted({str(f) for f in table["floor"].unique() if f}),
        "seconds": seconds,
        "notes": {
            "chance": "balanced accuracy: 1/K over the classes present in the split; "
            "mIoU: expected mIoU of a uniformly random pixel prediction; mAP: mean "
            "prevalence",
            "oracle": CEILING_NOTE,
            "seeds": "train_seed: the training seed of the weights (random-init floors draw "
            "theirs from it; band statistics repeat per training seed); seed: the probe seed, "
            "which draws the probes' train subsample (train_fraction of the train chips) "
            "inside each training seed",
        },
    }  # fmt: skip
    _write_table(out, table, fingerprint, meta)
    jobs.discard()
    return ProbeRun(table, out, seconds=seconds)


@dataclass(frozen=True)
class _CheckpointJob:
    """One checkpoint's job: embed every chip under it, write its tables, probe it."""

    path: Path
    model: Objective
    run: int
    train_seed: int
    floor_name: str

    def probe(
        self,
        chips: Path,
        labels: ChipLabels,
        collector: Collector,
        config: ProbeConfig,
        out: Path,
        log: Callable[[str], None],
    ) -> None:
        objective = self.model.objective
        log(f"embedding {objective} seed {self.train_seed} ({self.path})")
        emb = extract_embeddings(
            self.model, chips, labels.store_index, config.keys_for(objective),
            source=str(self.path), sensors=objective == ORACLE, accelerator=config.accelerator,
        )  # fmt: skip
        if self.run == 0:
            for depth in emb.pooled:
                write_embedding_table(
                    out / "embeddings" / f"{objective}__{depth}.parquet", emb, depth, labels.index
                )
        log(f"probing {objective} seed {self.train_seed}")
        collector.probe(emb, self.run, self.train_seed, self.floor_name)


def _write_table(out: Path, table: pd.DataFrame, fingerprint: str, meta: dict[str, Any]) -> None:
    """The settings (the completion record), then the tidy table: ``probes.parquet`` last."""
    write_record(out / META_FILE, fingerprint, meta, indent=2)
    with atomic_output(out / PROBE_CSV) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_output(out / PROBE_TABLE) as tmp:
        table.to_parquet(tmp, index=False)


def _write_outputs(
    out: Path,
    labels: ChipLabels,
    table: pd.DataFrame,
    collector: Collector,
    instrument: pd.DataFrame,
) -> None:
    """The report's inputs beside the table: instrument, predictions, maps, truth, chips."""
    test_rows = np.flatnonzero(labels.split == "test")
    with atomic_output(out / INSTRUMENT_TABLE) as tmp:
        instrument.to_parquet(tmp, index=False)
    with atomic_output(out / INSTRUMENT_CSV) as tmp:
        instrument.to_csv(tmp, index=False)
    frames = collector.predictions
    with atomic_output(out / PREDICTIONS_FILE) as tmp:
        (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_parquet(tmp)
    with atomic_output(out / SEGMENTATION_FILE) as tmp, tmp.open("wb") as handle:
        maps: dict[str, Any] = dict(collector.maps)
        np.savez_compressed(handle, test_store_index=labels.store_index[test_rows], **maps)
    with atomic_output(out / LABELS_FILE) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, store_index=labels.store_index, **labels.pixel)  # type: ignore[arg-type]
    columns = [c for c in ("chip_id", "store_index", "split", "scene", "col_off", "row_off")
               if c in labels.index]  # fmt: skip
    chips = labels.index[columns].copy()
    for name, values in labels.chip.items():
        if values.ndim == 1:
            chips[f"label_{name}"] = values
    with atomic_output(out / CHIPS_FILE) as tmp:
        chips.to_parquet(tmp, index=False)
