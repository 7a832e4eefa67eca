"""The rows objectives are read against: band statistics, exported tables, random-init floors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from eo_mmcl.objectives import Objective
from eo_mmcl.probe.collect import Collector
from eo_mmcl.probe.config import ProbeConfig
from eo_mmcl.probe.embeddings import (
    BAND_STATISTICS,
    RANDOM_INIT,
    ChipEmbeddings,
    band_statistics,
    extract_embeddings,
    find_embedding_tables,
    random_init_like,
    read_embedding_table,
    write_embedding_table,
)
from eo_mmcl.probe.survival import ORACLE


def probe_band_statistics(
    chips: Path,
    store_index: np.ndarray,
    train_seeds: list[int],
    collector: Collector,
    log: Callable[[str], None],
) -> None:
    """Probe the learning-free band-statistics reference under each training seed.

    No training: the same features under each training seed's probe subsamples, so that its
    rows nest like every other row's.
    """
    log(f"probing {BAND_STATISTICS}")
    stats = band_statistics(chips, store_index)
    for train_seed in train_seeds:
        collector.probe(stats, 0, train_seed, "")


def probe_tables(
    embeddings_dir: Path,
    store_index: np.ndarray,
    collector: Collector,
    log: Callable[[str], None],
) -> None:
    """Probe the per-chip embedding tables found below ``embeddings_dir``."""
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
        collector.probe(emb, 0, 0, "")


def floor_names(floors: dict[str, tuple[Objective, str]]) -> dict[str, str]:
    """Row name of each floored objective's floor.

    ``random-init`` where one architecture has a floor, ``random-init:<objective>`` otherwise.
    """
    objectives = [objective for _, objective in floors.values()]
    single = len(set(objectives)) == 1
    return {o: RANDOM_INIT if single else f"{RANDOM_INIT}:{o}" for o in objectives}


def probe_floors(
    floors: dict[str, tuple[Objective, str]],
    floor_seeds: list[int],
    chips: Path,
    store_index: np.ndarray,
    config: ProbeConfig,
    collector: Collector,
    embedding_dir: Path,
    log: Callable[[str], None],
) -> None:
    """Probe each random-init floor, its weights drawn from each training seed it floors."""
    names = floor_names(floors)
    for model, objective in floors.values():
        name = names[objective]
        log(f"probing {name}")
        for train_seed in floor_seeds:
            floor = random_init_like(model, train_seed)
            emb = extract_embeddings(
                floor,
                chips,
                store_index,
                config.keys_for(objective),
                objective=name,
                source=f"{RANDOM_INIT}({objective}, seed={train_seed})",
                accelerator=config.accelerator,
            )
            if train_seed == floor_seeds[0]:
                for depth in emb.pooled:
                    write_embedding_table(
                        embedding_dir / f"{name}__{depth}.parquet",
                        emb,
                        depth,
                        collector.labels.index,
                    )
            collector.probe(emb, 0, train_seed, name)


def named_floors(raw: pd.DataFrame, floors: dict[str, tuple[Objective, str]]) -> pd.DataFrame:
    """Point every row at its floor by the floor's row name (the oracle: the first floor)."""
    names = floor_names(floors)
    raw["floor"] = raw["floor"].map(lambda f: names.get(f, "") if f else "")
    raw.loc[raw["objective"].astype(str).str.startswith(RANDOM_INIT), "floor"] = raw["objective"]
    if (raw["objective"] == ORACLE).any() and floors:
        first = names[next(iter(floors.values()))[1]]
        raw.loc[raw["objective"] == ORACLE, "floor"] = first  # same backbones, untrained
    return raw
