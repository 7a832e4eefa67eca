"""A torchgeo ``NonGeoDataset`` over a Zarr chip store, read chunk-wise for speed."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch import Tensor
from torch.utils.data import Sampler
from torchgeo.datasets import NonGeoDataset

from eo_mmcl.errors import ConfigError
from eo_mmcl.io.tables import read_table
from eo_mmcl.tile.chunks import ChunkReader
from eo_mmcl.tile.store import INDEX_FILE, SPLITS, open_store, store_metadata

#: Chunks the sampler shuffles together and the dataset keeps in memory per array.
CHUNKS_PER_WINDOW = 4


class ChipStoreDataset(NonGeoDataset):
    """Paired S1/S2 chips of one split of a chip store.

    Samples are ``{'image_s1': (C1, H, W) float32 dB, 'image_s2': (C2, H, W) float32,
    'mask_<task>': (H, W) int64 (255 = nodata), 'label_<task>': (K,) float32 for multi-label
    tasks, 'valid': (H, W) bool, 'index': int64}``, raw values: normalisation runs later, on
    the device. The Zarr group is opened lazily in each process (DataLoader workers included),
    never shared across a fork. ``__getitems__`` reads whole chunks once per batch: Zarr costs
    about a millisecond per chunk read, so chunk-wise reading is what makes the store fast.

    Args:
        chips_dir: Chip store folder (``eo-mmcl tile`` output).
        split: ``train``, ``val``, ``test``, or None for every chip.
        tasks: Label tasks to return (default: all stored tasks).
        modalities: Which of ``s1`` and ``s2`` to return.

    Raises:
        SourceError: If the folder is not a complete chip store.
        ConfigError: If a split, task or modality is unknown.
    """

    def __init__(
        self,
        chips_dir: str | Path,
        split: str | None = "train",
        tasks: Sequence[str] | None = None,
        modalities: Sequence[str] = ("s1", "s2"),
    ) -> None:
        self.chips_dir = Path(chips_dir)
        group = open_store(self.chips_dir)  # raises if incomplete
        self.metadata = store_metadata(group)
        layout = self.metadata["layout"]
        if split is not None and split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS} or None, got {split!r}")
        available = {"s2", *(["s1"] if layout["s1_bands"] else [])}
        unknown = sorted(set(modalities) - available)
        if unknown:
            raise ConfigError(f"{self.chips_dir}: modalities {unknown} not stored ({available})")
        self.modalities = tuple(modalities)
        stored_tasks = dict(layout["tasks"])
        self.tasks = tuple(tasks) if tasks is not None else tuple(stored_tasks)
        missing = sorted(set(self.tasks) - set(stored_tasks))
        if missing:
            raise ConfigError(
                f"{self.chips_dir}: tasks {missing} not stored ({sorted(stored_tasks)})"
            )
        self.task_kinds = {t: stored_tasks[t]["kind"] for t in self.tasks}
        index = read_table(self.chips_dir / INDEX_FILE, geo=True, writer="eo-mmcl tile")
        if split is not None:
            index = index[index["split"] == split]
        self.index = index.sort_values("store_index").reset_index(drop=True)
        self.store_index = self.index["store_index"].to_numpy(dtype=np.int64)
        self.chips_per_chunk = int(layout["chips_per_chunk"])
        self._group: zarr.Group | None = None
        self._readers: dict[str, ChunkReader] = {}
        self._pid: int | None = None
        # Recently read chunks of each array (a small LRU): the sampler walks a few chunks at a
        # time, so the batches that continue them find them here instead of reading them again.
        self.cache_chunks = CHUNKS_PER_WINDOW
        self._cache: dict[str, OrderedDict[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.store_index)

    def _arrays(self) -> zarr.Group:
        # Opened per process: a handle inherited through fork would share the event loop
        # and thread pool of the parent's Zarr runtime.
        if self._group is None or self._pid != os.getpid():
            self._group = zarr.open_group(str(self.chips_dir / "chips.zarr"), mode="r")
            self._pid = os.getpid()
            self._cache = {}
            self._readers = {}
        return self._group

    def _chunk(self, group: zarr.Group, name: str, chunk: int) -> np.ndarray:
        cache = self._cache.setdefault(name, OrderedDict())
        if chunk in cache:
            cache.move_to_end(chunk)
            return cache[chunk]
        if name not in self._readers:
            # Each lookup reads the array's metadata from the store: do it once per process.
            handle = group[name]
            assert isinstance(handle, zarr.Array)
            self._readers[name] = ChunkReader(handle)
        block = self._readers[name].read(chunk)
        cache[chunk] = block
        if len(cache) > self.cache_chunks:
            cache.popitem(last=False)  # least recently used
        return block

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """One sample (see the class docstring).

        Args:
            index: Position in this split.

        Returns:
            The sample.
        """
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        """Several samples, reading each Zarr chunk once.

        Args:
            indices: Positions in this split.

        Returns:
            The samples, in the order of ``indices``.
        """
        group = self._arrays()
        slots = self.store_index[np.asarray(indices, dtype=np.int64)]
        names = [n for n in ("s1", "s2") if n in self.modalities] + ["valid", *self.tasks]
        per = self.chips_per_chunk
        data: dict[str, np.ndarray] = {}
        chunks = slots // per
        for name in names:
            parts = {int(c): self._chunk(group, name, int(c)) for c in dict.fromkeys(chunks)}
            first = next(iter(parts.values()))
            out = np.empty((len(slots), *first.shape[1:]), dtype=first.dtype)
            for chunk, block in parts.items():
                members = np.flatnonzero(chunks == chunk)
                out[members] = block[slots[members] - chunk * per]
            data[name] = out
        # Convert whole batches at once; samples are views into them (collate copies anyway).
        images = {
            n: torch.from_numpy(data[n].astype(np.float32, copy=False))
            for n in ("s1", "s2")
            if n in data
        }
        valid = torch.from_numpy(data["valid"].astype(bool))
        labels = {t: torch.from_numpy(data[t].astype(np.int64)) for t in self.tasks}
        samples = []
        for i, slot in enumerate(slots):
            sample: dict[str, Tensor] = {"index": torch.tensor(int(slot))}
            for name, batch in images.items():
                sample[f"image_{name}"] = batch[i]
            sample["valid"] = valid[i]
            for task, batch in labels.items():
                if self.task_kinds[task] == "multilabel":
                    sample[f"label_{task}"] = batch[i].float()
                else:
                    sample[f"mask_{task}"] = batch[i]
            samples.append(sample)
        return samples

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Plot S2 true colour, S1 VV and the first label of a sample.

        Args:
            sample: A sample of this dataset.
            suptitle: Optional figure title.

        Returns:
            A matplotlib figure.
        """
        import matplotlib.pyplot as plt

        keys = [k for k in ("image_s2", "image_s1") if k in sample]
        masks = [k for k in sample if k.startswith("mask_")][:1]
        fig, axes = plt.subplots(
            1, len(keys) + len(masks), figsize=(4 * (len(keys) + len(masks)), 4)
        )
        axes = np.atleast_1d(axes)
        for ax, key in zip(axes, keys + masks, strict=False):
            value = sample[key].numpy()
            if key == "image_s2":
                rgb = value[[3, 2, 1]].transpose(1, 2, 0) / 3000.0
                ax.imshow(np.clip(rgb, 0, 1))
            elif key == "image_s1":
                ax.imshow(value[0], cmap="gray", vmin=-25, vmax=0)
            else:
                ax.imshow(
                    np.where(value == 255, np.nan, value), cmap="tab10", interpolation="nearest"
                )
            ax.set_title(key)
            ax.axis("off")
        if suptitle:
            fig.suptitle(suptitle)
        return fig


class ChunkShuffleSampler(Sampler[int]):
    """Random order that visits chips a few chunks at a time.

    Chunks are shuffled and taken ``chunks_per_window`` at a time; the chips of a window are
    shuffled together. Consecutive indices therefore fall in a few chunks, which the dataset
    reads once and keeps while the window lasts. The store already holds each split in a seeded
    random order, so a chunk is a random sample of its split, and windows (hence batches) mix
    different chunks in every epoch. Under DDP each replica takes every ``num_replicas``-th
    window.

    Args:
        dataset: The chip store dataset.
        shuffle: Shuffle (False: store order).
        seed: Base seed; the epoch is added (call :meth:`set_epoch`).
        num_replicas: Number of distributed replicas.
        rank: This replica's rank.
        chunks_per_window: Chunks shuffled together (at most the dataset's chunk cache).
    """

    def __init__(
        self,
        dataset: ChipStoreDataset,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        chunks_per_window: int = CHUNKS_PER_WINDOW,
    ) -> None:
        self.chunks = dataset.store_index // dataset.chips_per_chunk
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank
        if not 1 <= chunks_per_window <= dataset.cache_chunks:
            raise ConfigError(
                f"chunks_per_window must be in 1..{dataset.cache_chunks}, got {chunks_per_window}"
            )
        self.chunks_per_window = chunks_per_window

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffle of the next iteration (Lightning calls this each epoch)."""
        self.epoch = epoch

    def _positions(self) -> list[np.ndarray]:
        unique = np.unique(self.chunks)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(unique) if self.shuffle else unique
        windows = [
            order[i : i + self.chunks_per_window]
            for i in range(0, len(order), self.chunks_per_window)
        ]
        groups = []
        for window in windows[self.rank :: self.num_replicas]:
            members = np.flatnonzero(np.isin(self.chunks, window))
            groups.append(rng.permutation(members) if self.shuffle else members)
        return groups

    def __iter__(self) -> Iterator[int]:
        for group in self._positions():
            yield from (int(i) for i in group)

    def __len__(self) -> int:
        return sum(len(g) for g in self._positions())
