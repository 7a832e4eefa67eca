"""Paired-sample throughput: torchgeo on-the-fly vs the chip-store datamodule vs a raw memmap.

On the same simulated scenes, one process (``num_workers=0``), warm cache, 128 px patches of
2 S1 + 12 S2 bands with the labels and the validity mask:

(a) torchgeo on-the-fly: ``RasterDataset`` s of S1, S2 and labels intersected with ``&``,
    ``RandomGeoSampler``, ``stack_samples``;
(b) the chip store: ``ChipStoreDataset`` + ``ChunkShuffleSampler`` (chunk-wise reads);
(c) a raw NumPy memmap of the same chip bytes, read with fancy indexing per batch.

Prints the three figures and, last, ``ratio_vs_torchgeo=B/A ratio_vs_memmap=B/C``.

Usage: python benchmarks/datamodule_throughput.py [--size 2048] [--scenes 3] [--chip-size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.datamodules import ChipStoreDataset, ChunkShuffleSampler
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, open_store, tile_catalog


class MemmapChips(Dataset[dict[str, torch.Tensor]]):
    """The same chip arrays as ``.npy`` memmaps; one fancy-indexed read per array and batch."""

    def __init__(self, folder: Path, slots: np.ndarray) -> None:
        self.arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
        self.slots = slots

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        slots = np.sort(self.slots[np.asarray(indices)])
        data = {k: np.asarray(v[slots]) for k, v in self.arrays.items()}
        return [
            {
                "image_s1": torch.from_numpy(data["s1"][i]),
                "image_s2": torch.from_numpy(data["s2"][i].astype(np.float32)),
                "valid": torch.from_numpy(data["valid"][i].astype(bool)),
                **{
                    f"mask_{k}": torch.from_numpy(data[k][i].astype(np.int64))
                    for k in data
                    if k not in ("s1", "s2", "valid", "cloud")
                },
            }
            for i in range(len(slots))
        ]


def _chip_loader(chips: Path, batch_size: int) -> DataLoader[dict[str, torch.Tensor]]:
    dataset = ChipStoreDataset(chips, split=None)
    sampler = ChunkShuffleSampler(dataset, seed=0)
    return DataLoader(dataset, sampler=sampler, batch_size=batch_size)


def _rate(batches: Iterable[dict[str, torch.Tensor]], limit: int) -> float:
    start, seen = time.perf_counter(), 0
    for batch in batches:
        seen += len(batch["image_s2"])
        if seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--chip-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--onthefly-samples", type=int, default=160)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_scenes(
            root / "scenes", SimulationConfig(size=args.size, seed=0, scenes=args.scenes)
        )
        build_catalog([folder_source(root / "scenes")], root / "catalog")
        config = TileConfig(chip_size=args.chip_size, max_cloud=0.5, split_block=2)
        tile_catalog(root / "catalog", root / "chips", config, workers=0)
        dataset = ChipStoreDataset(root / "chips", split=None)
        n = len(dataset)

        group = open_store(root / "chips")
        (root / "mm").mkdir()
        for name in group.array_keys():
            np.save(root / "mm" / f"{name}.npy", np.asarray(group[name][:]))
        memmap = MemmapChips(root / "mm", dataset.store_index)

        from torchgeo.datasets import stack_samples

        from eo_mmcl.datamodules.onthefly import onthefly_samplers, paired_raster_dataset

        raster = paired_raster_dataset(root / "catalog")
        sampler = onthefly_samplers(raster, args.chip_size, args.onthefly_samples, train=True)
        loader_a = DataLoader(
            raster, sampler=sampler, batch_size=args.batch_size, collate_fn=stack_samples
        )
        loader_b = DataLoader(
            dataset, sampler=ChunkShuffleSampler(dataset, seed=0), batch_size=args.batch_size
        )
        loader_c = DataLoader(memmap, sampler=RandomSampler(memmap), batch_size=args.batch_size)
        for loader in (loader_b, loader_c):  # warm the page cache
            _rate(loader, n)
        _rate(loader_a, args.batch_size)
        a = _rate(loader_a, args.onthefly_samples)
        # A fresh dataset per epoch: its chunk cache starts empty (only the OS page cache is
        # warm, as for the memmap), so small stores cannot be served from memory.
        b = float(
            np.median([_rate(_chip_loader(root / "chips", args.batch_size), n) for _ in range(3)])
        )
        c = float(np.median([_rate(loader_c, n) for _ in range(3)]))
        print(f"chips={n} chip_size={args.chip_size} bands=2+12 batch_size={args.batch_size}")
        print(f"torchgeo_onthefly_samples_per_s={a:.1f}")
        print(f"chip_store_samples_per_s={b:.1f}")
        print(f"memmap_samples_per_s={c:.1f}")
        print(f"ratio_vs_torchgeo={b / a:.2f} ratio_vs_memmap={b / c:.2f}")


if __name__ == "__main__":
    main()
