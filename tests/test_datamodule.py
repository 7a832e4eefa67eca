"""The paired S1/S2 datamodule in chip-store mode: samples, sampler, normalisation, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.datamodules import (
    ChipStoreDataset,
    ChunkShuffleSampler,
    PairedS1S2DataModule,
    PairedS1S2Transform,
)
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog

TASKS = ("landcover", "s1_unique", "s2_unique", "synergy")


@pytest.fixture(scope="module")
def chips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dm")
    simulate_scenes(root / "scenes", SimulationConfig(size=256, seed=2, parcel_size=32))
    build_catalog([folder_source(root / "scenes")], root / "catalog")
    tile_catalog(
        root / "catalog",
        root / "chips",
        TileConfig(chip_size=32, split_block=2, max_cloud=0.3, chips_per_chunk=4),
        workers=0,
    )
    return root / "chips"


def test_samples_have_the_contract_keys(chips_dir: Path) -> None:
    sample = ChipStoreDataset(chips_dir, split="train")[0]
    assert sample["image_s1"].shape == (2, 32, 32) and sample["image_s1"].dtype == torch.float32
    assert sample["image_s2"].shape == (12, 32, 32) and sample["image_s2"].dtype == torch.float32
    assert sample["valid"].dtype == torch.bool
    for task in TASKS:
        assert sample[f"mask_{task}"].shape == (32, 32)
        assert sample[f"mask_{task}"].dtype == torch.int64


def test_batched_reads_equal_single_reads(chips_dir: Path) -> None:
    dataset = ChipStoreDataset(chips_dir, split=None)
    picks = [5, 0, 9, 3, len(dataset) - 1]
    batch = dataset.__getitems__(picks)
    for i, sample in zip(picks, batch, strict=True):
        single = dataset[i]
        for key in single:
            torch.testing.assert_close(sample[key], single[key], equal_nan=True)


def test_splits_partition_the_index(chips_dir: Path) -> None:
    sizes = {s: len(ChipStoreDataset(chips_dir, split=s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(ChipStoreDataset(chips_dir, split=None))
    assert sizes["train"] > 0


def test_chunk_shuffle_sampler(chips_dir: Path) -> None:
    dataset = ChipStoreDataset(chips_dir, split="train")
    sampler = ChunkShuffleSampler(dataset, seed=1, chunks_per_window=2)
    first = list(sampler)
    assert sorted(first) == list(range(len(dataset)))
    # At most two chunks are "open" (started, not exhausted) at any time: the dataset's chunk
    # cache then serves every read after the first of each chunk.
    chunks = dataset.store_index[first] // dataset.chips_per_chunk
    remaining = dict(zip(*np.unique(chunks, return_counts=True), strict=True))
    open_chunks: set[int] = set()
    for chunk in chunks:
        open_chunks.add(int(chunk))
        assert len(open_chunks) <= 2
        remaining[chunk] -= 1
        if remaining[chunk] == 0:
            open_chunks.discard(int(chunk))
    single = ChunkShuffleSampler(dataset, seed=1, chunks_per_window=1)
    order = dataset.store_index[list(single)] // dataset.chips_per_chunk
    assert (np.diff(order) != 0).sum() == len(np.unique(order)) - 1
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    halves = [set(ChunkShuffleSampler(dataset, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert halves[0].isdisjoint(halves[1]) and len(halves[0] | halves[1]) == len(dataset)


def test_normalisation_uses_the_store_statistics(chips_dir: Path) -> None:
    dm = PairedS1S2DataModule(chips_dir, batch_size=256, augment=False)
    dm.setup("fit")
    batch = dm.aug(next(iter(dm.train_dataloader())))
    valid = batch["valid"]
    s2 = batch["image_s2"].permute(1, 0, 2, 3)[:, valid]
    torch.testing.assert_close(s2.mean(dim=1), torch.zeros(12), atol=0.05, rtol=0)
    torch.testing.assert_close(s2.std(dim=1), torch.ones(12), atol=0.05, rtol=0)
    assert torch.isfinite(batch["image_s1"]).all()


def _tracking_batch() -> dict[str, torch.Tensor]:
    # S1 carries a copy of two S2 bands: after augmentation they must still coincide.
    s2 = torch.randn(8, 12, 16, 16)
    return {
        "image_s2": s2,
        "image_s1": s2[:, :2].clone(),
        "valid": s2[:, 0] > 0,
        "mask_landcover": (s2[:, 1] > 0).long(),
        "label_x": torch.ones(8, 3),
    }


def test_paired_augmentation_moves_modalities_and_masks_together() -> None:
    torch.manual_seed(0)
    zeros, ones = [0.0] * 12, [1.0] * 12
    transform = PairedS1S2Transform([0.0, 0.0], [1.0, 1.0], zeros, ones, augment=True)
    batch = _tracking_batch()
    out = transform(batch)
    torch.testing.assert_close(out["image_s1"], out["image_s2"][:, :2])
    torch.testing.assert_close(out["valid"], out["image_s2"][:, 0] > 0)
    torch.testing.assert_close(out["mask_landcover"], (out["image_s2"][:, 1] > 0).long())
    assert out["mask_landcover"].dtype == torch.int64 and out["label_x"].shape == (8, 3)
    assert not torch.equal(out["image_s2"], batch["image_s2"])  # something moved
    independent = PairedS1S2Transform(
        [0.0, 0.0], [1.0, 1.0], zeros, ones, augment=True, independent_views=True
    )
    out = independent(_tracking_batch())
    assert not torch.equal(out["image_s1"], out["image_s2"][:, :2])


def test_worker_processes_read_the_same_chips(chips_dir: Path) -> None:
    def indices(workers: int) -> list[int]:
        dm = PairedS1S2DataModule(chips_dir, batch_size=4, num_workers=workers, augment=False)
        dm.setup("fit")
        return sorted(int(i) for b in dm.train_dataloader() for i in b["index"])

    assert indices(2) == indices(0)


def test_bad_arguments_are_clear(chips_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split"):
        ChipStoreDataset(chips_dir, split="training")
    with pytest.raises(ConfigError, match="tasks"):
        ChipStoreDataset(chips_dir, tasks=["ndvi"])
    with pytest.raises(SourceError, match="not a complete chip store"):
        ChipStoreDataset(tmp_path)
    with pytest.raises(ConfigError, match="mode"):
        PairedS1S2DataModule(chips_dir, mode="stream")


def test_both_modes_give_the_same_keys_and_shapes(chips_dir: Path) -> None:
    catalog = chips_dir.parent / "catalog"
    chips = PairedS1S2DataModule(chips_dir, batch_size=4, augment=True)
    raster = PairedS1S2DataModule(
        chips_dir,
        mode="onthefly",
        catalog_dir=catalog,
        batch_size=4,
        patch_size=32,
        samples_per_epoch=8,
    )
    batches = []
    for dm in (chips, raster):
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        batches.append(dm.train_aug(dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)))
    tensors = [
        {k: v for k, v in b.items() if isinstance(v, torch.Tensor) and k != "index"}
        for b in batches
    ]
    assert tensors[0].keys() == tensors[1].keys()
    for key in tensors[0]:
        assert tensors[0][key].shape == tensors[1][key].shape, key
        assert tensors[0][key].dtype == tensors[1][key].dtype, key


def test_onthefly_splits_draw_inside_their_own_chips_only(chips_dir: Path) -> None:
    """Each split's patches lie inside that split's chips of the store, never in another's."""
    import geopandas as gpd
    import shapely

    from eo_mmcl.datamodules.onthefly import onthefly_samplers

    patch = 16
    dm = PairedS1S2DataModule(
        chips_dir, mode="onthefly", catalog_dir=chips_dir.parent / "catalog", patch_size=patch
    )
    dm.setup("fit")
    datasets = {"train": dm.train_dataset, "val": dm.val_dataset, "test": dm.test_dataset}
    assert len({id(d) for d in datasets.values()}) == 3  # three datasets, not one
    index = gpd.read_parquet(chips_dir / "index.parquet")
    footprints = {
        split: shapely.union_all(shapely.from_wkt(index.loc[index["split"] == split,
                                                            "footprint_native"]))
        for split in datasets
    }  # fmt: skip
    for split, dataset in datasets.items():
        queries = list(onthefly_samplers(dataset, patch, 32, train=split == "train"))
        assert queries, split
        for query in queries:
            box = shapely.box(query[0].start, query[1].start, query[0].stop, query[1].stop)
            assert footprints[split].buffer(1e-6).contains(box), split
            for other in set(datasets) - {split}:
                assert box.intersection(footprints[other]).area == 0, (split, other)
        sample = dataset[queries[0]]
        assert sample["image_s2"].shape[-2:] == (patch, patch)
