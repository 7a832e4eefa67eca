"""``eo-mmcl probe``: embed a chip store under each checkpoint, probe every task, write a table."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl import __version__
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.probes.classifiers import (
    ProbeResult,
    knn_probe,
    linear_probe,
    segmentation_probe,
)
from eo_mmcl.probes.embeddings import (
    BAND_STATISTICS,
    DEPTHS,
    RANDOM_INIT,
    ChipEmbeddings,
    band_statistics,
    extract_embeddings,
    find_embedding_tables,
    load_objective,
    random_init_like,
    read_embedding_table,
    write_embedding_table,
)
from eo_mmcl.probes.survival import MIN_ORACLE_MARGIN, ORACLE, add_survival
from eo_mmcl.probes.tasks import ChipLabels, load_chip_labels
from eo_mmcl.tasks import ObjectiveTask
from eo_mmcl.tasks.checkpoint import read_checkpoint

PROBES = ("linear", "knn", "segmentation")
PROBE_TABLE = "probes.parquet"
PROBE_CSV = "probes.csv"
META_FILE = "probe_meta.json"
PREDICTIONS_FILE = "predictions.parquet"
SEGMENTATION_FILE = "segmentation.npz"
LABELS_FILE = "labels.npz"
CHIPS_FILE = "chips.parquet"


@dataclass
class ProbeConfig:
    """What ``eo-mmcl probe`` measures.

    Args:
        seeds: Number of seeds; seed ``s`` draws the probes' train subsample and the
            random-init weights.
        probes: Probes to run (``linear``, ``knn``, ``segmentation``).
        train_fraction: Fraction of the train chips each seed's probes train on.
        keys: Embedding key per depth, per objective (``"*"`` for every objective), e.g.
            ``{"coral": {"projection": "proj_joint"}, "*": {"backbone": "joint"}}``.
        pixels_per_chip: Pixels per chip sampled to train the segmentation head.
        random_init: Also probe untrained encoders of each architecture (the floor).
        reference: Also probe per-chip band statistics (``band-stats``, no learning).
    """

    seeds: int = 3
    probes: tuple[str, ...] = PROBES
    train_fraction: float = 0.8
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    pixels_per_chip: int = 16
    random_init: bool = True
    reference: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.probes) - set(PROBES))
        if unknown:
            raise ConfigError(f"unknown probes {unknown}; expected some of {PROBES}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        for objective, per_depth in self.keys.items():
            bad = sorted(set(per_depth) - set(DEPTHS))
            if bad:
                raise ConfigError(f"--key {objective}: unknown depths {bad}; expected {DEPTHS}")

    def keys_for(self, objective: str) -> dict[str, str]:
        """Embedding keys of one objective (its own overrides over the ``*`` ones)."""
        return {**self.keys.get("*", {}), **self.keys.get(objective, {})}


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


def parse_keys(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """Parse ``--key`` options: ``DEPTH=KEY`` or ``OBJECTIVE:DEPTH=KEY``.

    Args:
        specs: The option values.

    Returns:
        Keys per objective (``"*"`` for all) and depth.

    Raises:
        ConfigError: If a value is malformed.
    """
    keys: dict[str, dict[str, str]] = {}
    for spec in specs:
        target, sep, key = spec.partition("=")
        objective, _, depth = target.rpartition(":")
        if not sep or not key or depth not in DEPTHS:
            raise ConfigError(
                f"--key {spec!r}: expected DEPTH=KEY or OBJECTIVE:DEPTH=KEY with DEPTH in {DEPTHS}"
            )
        keys.setdefault(objective or "*", {})[depth] = key
    return keys


def _fingerprint(
    chips_dir: Path, checkpoints: Sequence[Path], embeddings_dir: Path | None, config: ProbeConfig
) -> str:
    parts: list[Any] = [__version__, str(chips_dir.resolve()), config.__dict__]
    for path in [*checkpoints, chips_dir / "tile_manifest.json"]:
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    if embeddings_dir is not None:
        tables = find_embedding_tables(embeddings_dir)
        parts += [[str(t.path), t.path.stat().st_mtime_ns] for t in tables]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _train_rows(labels: ChipLabels, fraction: float, seed: int) -> np.ndarray:
    train = np.flatnonzero(labels.split == "train")
    if fraction >= 1:
        return train
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(train, size=max(2, round(fraction * train.size)), replace=False))


def _probe_embeddings(
    emb: ChipEmbeddings,
    labels: ChipLabels,
    config: ProbeConfig,
    seed: int,
    keep: Callable[[dict[str, Any], np.ndarray, np.ndarray], None],
) -> list[dict[str, Any]]:
    """Every probe of every task on one model's embeddings for one seed."""
    rows: list[dict[str, Any]] = []
    train_rows = _train_rows(labels, config.train_fraction, seed)
    n_test = int((labels.split == "test").sum())

    def result_fields(result: ProbeResult) -> dict[str, Any]:
        """The columns every probe row shares: the score and what it was measured on."""
        return {
            "metric": result.metric,
            "score": result.score,
            "chance": result.chance,
            "param": float(result.param),
            "val_score": result.val_score,
            "n_train": int(train_rows.size),
            "n_test": n_test,
        }

    for task in labels.tasks.values():
        y = labels.chip[task.name]
        for depth, x in emb.pooled.items():
            for probe in ("linear", "knn"):
                if probe not in config.probes:
                    continue
                if probe == "linear":
                    result = linear_probe(x, y, labels.split, train_rows, seed=seed)
                else:
                    result = knn_probe(x, y, labels.split, train_rows)
                row = {
                    "task": task.name,
                    "group": task.group,
                    "probe": probe,
                    "depth": depth,
                    "embedding": emb.keys[depth],
                    **result_fields(result),
                }
                rows.append(row)
                keep(row, result.y_true, result.y_pred)
        if "segmentation" in config.probes and task.kind == "pixel" and emb.dense is not None:
            result = segmentation_probe(
                emb.dense,
                labels.pixel[task.name],
                labels.split,
                task.num_classes,
                train_rows,
                pixels_per_chip=config.pixels_per_chip,
                seed=seed,
            )
            row = {
                "task": task.name,
                "group": task.group,
                "probe": "segmentation",
                "depth": "backbone",
                "embedding": "dense_s1_s2",
                **result_fields(result),
            }
            rows.append(row)
            keep(row, result.y_true, result.y_pred)
    return rows


def _weights_hash(task: ObjectiveTask) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(task.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _checkpoint_info(path: Path, task: ObjectiveTask) -> dict[str, Any]:
    raw = read_checkpoint(path)
    # Scalars, and the timm arguments of the backbone (a dict) that a reader needs to rebuild it.
    hparams = {
        k: v
        for k, v in dict(task.hparams).items()
        if isinstance(v, int | float | str) or k == "backbone_kwargs"
    }
    return {
        "path": str(path),
        "objective": task.objective,
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

    Per checkpoint (and, with ``random_init``, per untrained copy of each architecture) and per
    seed: chip embeddings at the backbone and projection depths, dense feature maps, then the
    linear, kNN and segmentation probes of every task. Writes into ``out_dir``:
    ``probes.parquet`` and ``probes.csv`` (the tidy table), ``probe_meta.json`` (settings, data
    sizes, checkpoints), ``predictions.parquet`` (seed 0 test predictions of the chip probes),
    ``segmentation.npz`` (seed 0 test maps), ``labels.npz`` and ``chips.parquet`` (truth and chip
    positions for the report's maps) and ``embeddings/<objective>__<depth>.parquet`` (seed 0
    per-chip embeddings, GeoParquet). The table is written last: its presence means done.

    Args:
        chips_dir: Chip store folder.
        checkpoints: Checkpoints of ``eo-mmcl train``; several of one objective count as runs.
        out_dir: Output folder.
        config: What to probe.
        embeddings_dir: Optional folder of per-chip embedding tables
            ``<objective>__<depth>.parquet`` (columns ``store_index``, ``embedding``) probed as
            extra rows, e.g. tables written by an earlier run or another exporter.
        scenes_dir: Optional simulator output folder whose sidecars go into the settings.
        force: Probe again even if a finished run with the same inputs exists.
        log: Progress messages.

    Returns:
        The run.

    Raises:
        ConfigError: If nothing is given to probe or no ``supervised`` oracle is present.
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
    fingerprint = _fingerprint(
        chips, paths, Path(embeddings_dir) if embeddings_dir else None, config
    )
    meta_path = out / META_FILE
    finished = not force and (out / PROBE_TABLE).exists() and meta_path.exists()
    if finished and json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
        return ProbeRun(pd.read_parquet(out / PROBE_TABLE), out, reused=True)
    start = time.perf_counter()
    store_index = labels.store_index
    rows: list[dict[str, Any]] = []
    predictions: list[pd.DataFrame] = []
    maps: dict[str, np.ndarray] = {}
    test_rows = np.flatnonzero(labels.split == "test")
    chip_ids = labels.store_index[test_rows]

    def probe(emb: ChipEmbeddings, run: int, floor: str, seeds: Sequence[int]) -> None:
        for seed in seeds:
            ident = {
                "objective": emb.objective,
                "run": run,
                "architecture": emb.architecture,
                "floor": floor,
                "seed": seed,
                "checkpoint": emb.source,
            }

            def keep(
                row: dict[str, Any],
                y_true: np.ndarray,
                y_pred: np.ndarray,
                first: bool = seed == seeds[0] and run == 0,
            ) -> None:
                if not first or y_pred.size == 0:
                    return
                if row["probe"] == "segmentation":
                    maps[f"{emb.objective}|{row['task']}"] = y_pred.astype(np.uint8)
                    return
                predictions.append(
                    pd.DataFrame(
                        {
                            "objective": emb.objective,
                            "task": row["task"],
                            "probe": row["probe"],
                            "depth": row["depth"],
                            "store_index": chip_ids,
                            "y_true": y_true.astype(np.int64),
                            "y_pred": y_pred.astype(np.int64),
                        }
                        if y_true.size == chip_ids.size
                        else {}
                    )
                )

            for row in _probe_embeddings(emb, labels, config, seed, keep):
                rows.append({**ident, **row})

    embedding_dir = out / "embeddings"
    checkpoint_info: list[dict[str, Any]] = []
    floors: dict[str, tuple[ObjectiveTask, str]] = {}
    runs: dict[str, int] = {}
    seeds = list(range(config.seeds))
    for path in paths:
        task = load_objective(path)
        checkpoint_info.append(_checkpoint_info(path, task))
        objective = task.objective
        run = runs.get(objective, 0)
        runs[objective] = run + 1
        log(f"embedding {objective} ({path})")
        emb = extract_embeddings(
            task, chips, store_index, config.keys_for(objective), source=str(path)
        )
        if run == 0:
            for depth in emb.pooled:
                write_embedding_table(
                    embedding_dir / f"{objective}__{depth}.parquet", emb, depth, labels.index
                )
        # One floor per distinct untrained network, oracle excluded: the floor of an objective
        # is its own network, untrained (clip and cross_self share theirs: same modules, same
        # seed, hence the same weights).
        arch_key = _weights_hash(random_init_like(task, 0))
        if objective != ORACLE and config.random_init and arch_key not in floors:
            floors[arch_key] = (task, objective)
        floor_name = floors[arch_key][1] if arch_key in floors else ""
        log(f"probing {objective}")
        probe(emb, run, floor_name, seeds)
    if config.reference:
        log(f"probing {BAND_STATISTICS}")
        probe(band_statistics(chips, store_index), 0, "", seeds)
    if embeddings_dir is not None:
        for found in find_embedding_tables(embeddings_dir):
            emb = ChipEmbeddings(
                objective=found.name,
                architecture=found.architecture,
                source=str(found.path),
                store_index=store_index,
                pooled={found.depth: read_embedding_table(found.path, store_index)},
                keys={found.depth: "embedding"},
            )
            log(f"probing {found.name}")
            probe(emb, 0, "", seeds)
    # Random-init floors: weights drawn per seed, so their spread includes the draw.
    floor_names = {objective for _, objective in floors.values()}
    single = len(floor_names) == 1
    for task, objective in floors.values():
        name = RANDOM_INIT if single else f"{RANDOM_INIT}:{objective}"
        log(f"probing {name}")
        for seed in seeds:
            floor = random_init_like(task, seed)
            emb = extract_embeddings(
                floor,
                chips,
                store_index,
                config.keys_for(objective),
                objective=name,
                source=f"{RANDOM_INIT}({objective}, seed={seed})",
            )
            if seed == 0:
                for depth in emb.pooled:
                    write_embedding_table(
                        embedding_dir / f"{name}__{depth}.parquet", emb, depth, labels.index
                    )
            probe(emb, 0, name, [seed])
    raw = pd.DataFrame(rows)
    # Each trained objective points at its floor by the floor's row name.
    raw["floor"] = raw["floor"].map(
        lambda f: "" if not f else (RANDOM_INIT if single else f"{RANDOM_INIT}:{f}")
    )
    raw.loc[raw["objective"].astype(str).str.startswith(RANDOM_INIT), "floor"] = raw["objective"]
    if (raw["objective"] == ORACLE).any() and floors:
        first = RANDOM_INIT if single else f"{RANDOM_INIT}:{next(iter(floors.values()))[1]}"
        raw.loc[raw["objective"] == ORACLE, "floor"] = first  # same backbones, untrained
    table = add_survival(raw)
    seconds = time.perf_counter() - start
    _write_outputs(out, labels, table, predictions, maps, test_rows)
    meta = {
        "fingerprint": fingerprint,
        "version": __version__,
        "chips_dir": str(chips),
        "splits": labels.split_counts(),
        "chip_size": next((int(p.shape[-1]) for p in labels.pixel.values()), None),
        "tasks": {t.name: {"group": t.group, "num_classes": t.num_classes, "kind": t.kind,
                           "class_names": list(t.class_names)} for t in labels.tasks.values()},
        "tile_config": labels.metadata.get("tile_config", {}),
        "checkpoints": checkpoint_info,
        "embeddings_dir": str(embeddings_dir) if embeddings_dir else None,
        "config": {**config.__dict__, "probes": list(config.probes)},
        "simulator": _simulator_settings(Path(scenes_dir) if scenes_dir else None),
        "floors": sorted({str(f) for f in table["floor"].unique() if f}),
        "seconds": seconds,
        "notes": {
            "chance": "balanced accuracy: 1/K over the classes present in the test split; "
            "mIoU: expected mIoU of a uniformly random pixel prediction; mAP: mean test "
            "prevalence",
            "oracle": "best, over the probes sharing the task's metric, of the supervised "
            "checkpoint(s)' mean score over seeds at the backbone depth; survival is NaN where "
            f"it is less than {MIN_ORACLE_MARGIN} above chance",
            "seeds": "seed s draws the probes' train subsample (train_fraction of the train "
            "chips) and the random-init weights; several checkpoints of one objective add runs",
        },
    }  # fmt: skip
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str))
    with atomic_output(out / PROBE_CSV) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_output(out / PROBE_TABLE) as tmp:
        table.to_parquet(tmp, index=False)
    return ProbeRun(table, out, seconds=seconds)


def _write_outputs(
    out: Path,
    labels: ChipLabels,
    table: pd.DataFrame,
    predictions: list[pd.DataFrame],
    maps: dict[str, np.ndarray],
    test_rows: np.ndarray,
) -> None:
    """The report's inputs beside the table: predictions, maps, truth and chip positions."""
    frames = [p for p in predictions if not p.empty]
    with atomic_output(out / PREDICTIONS_FILE) as tmp:
        (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_parquet(tmp)
    with atomic_output(out / SEGMENTATION_FILE) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, test_store_index=labels.store_index[test_rows], **maps)  # type: ignore[arg-type]
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
