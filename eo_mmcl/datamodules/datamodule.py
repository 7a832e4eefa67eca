"""``PairedS1S2DataModule``: paired S1/S2 batches from a chip store or straight from rasters."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchgeo.datamodules import NonGeoDataModule

from eo_mmcl.datamodules.chipstore import ChipStoreDataset, ChunkShuffleSampler
from eo_mmcl.datamodules.transforms import PairedS1S2Transform
from eo_mmcl.errors import ConfigError

#: The datamodule's counts and their least values.
LEAST_COUNTS = {"batch_size": 1, "num_workers": 0, "patch_size": 1, "samples_per_epoch": 1}


def check_counts(**counts: int) -> None:
    """Check the datamodule's counts before anything is read.

    Checked here, not left to the DataLoader, whose errors come after the store is opened, as
    tracebacks; a pipeline checks its ``train.args`` with it before any stage runs.

    Args:
        counts: Some of :data:`LEAST_COUNTS`, by name.

    Raises:
        ConfigError: If one is below its least value, naming ``data.<name>``.
    """
    for name, value in counts.items():
        least = LEAST_COUNTS[name]
        if value < least:
            raise ConfigError(f"data.{name} must be >= {least}, got {value}")


class PairedS1S2DataModule(NonGeoDataModule):
    """Paired S1/S2 samples for training, validation, test and prediction.

    Two modes give the same sample keys (``image_s1``, ``image_s2``, ``mask_<task>``, ``valid``):

    - ``chips`` (fast path): a :class:`ChipStoreDataset` per split of a Zarr chip store, read
      chunk-wise with a :class:`ChunkShuffleSampler`.
    - ``onthefly``: torchgeo ``RasterDataset``s of the catalog's S1, S2 and label rasters
      intersected with ``&`` and sampled with torchgeo samplers (random for training, a grid
      for evaluation); every sample is reprojected on the fly, which is slow.

    Normalisation (per-modality statistics of the chip store's train split, or given) and
    augmentation run on the device in ``on_after_batch_transfer``.

    Args:
        chips_dir: Chip store folder (``chips`` mode; also the source of the statistics).
        mode: ``chips`` or ``onthefly``.
        catalog_dir: Catalog folder (``onthefly`` mode; its train, val and test patches are
            drawn inside the chip footprints of each split of ``chips_dir``).
        batch_size: Batch size.
        num_workers: DataLoader workers (the Zarr store is opened in each).
        tasks: Label tasks to load (default: all).
        augment: Random flips and rotations for training.
        independent_views: Independent geometry for S1 and S2 (default: the same).
        patch_size: Patch size in ``onthefly`` mode (pixels).
        samples_per_epoch: Random patches per training epoch in ``onthefly`` mode.
        normalisation: Override of the statistics: ``{'s1'|'s2': {'mean': [...], 'std': [...]}}``.
        pin_memory: Pin host memory (default: when CUDA is available).
        persistent_workers: Keep workers between epochs (when ``num_workers > 0``).
        seed: Seed of the samplers.

    Raises:
        ConfigError: If the mode lacks its folder, or a count is out of range (one line, before
            any file is read).
    """

    def __init__(
        self,
        chips_dir: str | Path | None = None,
        mode: str = "chips",
        catalog_dir: str | Path | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        tasks: Sequence[str] | None = None,
        augment: bool = True,
        independent_views: bool = False,
        patch_size: int = 64,
        samples_per_epoch: int = 1024,
        normalisation: dict[str, dict[str, Any]] | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        seed: int = 0,
    ) -> None:
        if mode not in ("chips", "onthefly"):
            raise ConfigError(f"mode must be 'chips' or 'onthefly', got {mode!r}")
        if mode == "chips" and chips_dir is None:
            raise ConfigError("chips mode needs chips_dir")
        if mode == "onthefly" and catalog_dir is None:
            raise ConfigError("onthefly mode needs catalog_dir")
        check_counts(
            batch_size=batch_size,
            num_workers=num_workers,
            patch_size=patch_size,
            samples_per_epoch=samples_per_epoch,
        )
        super().__init__(ChipStoreDataset, batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters()
        self.chips_dir = Path(chips_dir) if chips_dir is not None else None
        self.catalog_dir = Path(catalog_dir) if catalog_dir is not None else None
        self.mode = mode
        self.tasks = tuple(tasks) if tasks is not None else None
        self.patch_size = patch_size
        self.samples_per_epoch = samples_per_epoch
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed = seed
        self.normalisation = normalisation or self._stored_normalisation()
        self.train_aug = PairedS1S2Transform.from_statistics(
            self.normalisation, augment, independent_views
        )
        self.aug = PairedS1S2Transform.from_statistics(self.normalisation)

    def _stored_normalisation(self) -> dict[str, dict[str, Any]]:
        if self.chips_dir is None:
            raise ConfigError("give normalisation statistics, or a chips_dir that holds them")
        metadata = ChipStoreDataset(self.chips_dir, split=None).metadata
        stats = metadata.get("normalisation")
        if not stats:
            raise ConfigError(f"{self.chips_dir}: the chip store holds no normalisation statistics")
        return {k: dict(v) for k, v in stats.items()}

    @property
    def store_tasks(self) -> dict[str, dict[str, Any]]:
        """The chip store's label tasks (group, classes, kind), empty without a store."""
        if self.chips_dir is None:
            return {}
        layout = ChipStoreDataset(self.chips_dir, split=None).metadata["layout"]
        return dict(layout["tasks"])

    def state_dict(self) -> dict[str, Any]:
        """The sampler's seed, kept in checkpoints (Lightning restores the epoch it adds).

        Returns:
            ``{'seed': ...}``.
        """
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Shuffle a resumed run as the checkpoint's run did, whatever ``--data.seed`` says.

        Lightning restores this before it builds the data loaders.

        Args:
            state_dict: What :meth:`state_dict` returned.
        """
        self.seed = int(state_dict.get("seed", self.seed))

    @property
    def chip_size(self) -> int | None:
        """The chip store's chip side in pixels, None without a store."""
        if self.chips_dir is None:
            return None
        return int(ChipStoreDataset(self.chips_dir, split=None).metadata["layout"]["chip_size"])

    @property
    def bands(self) -> dict[str, list[str]]:
        """Band names per modality (what encoders' ``in_chans`` must match)."""
        return {k: list(v.get("bands", [])) for k, v in self.normalisation.items()}

    def setup(self, stage: str) -> None:
        """Create the datasets of a stage.

        Args:
            stage: ``fit``, ``validate``, ``test`` or ``predict``.
        """
        if self.mode == "onthefly":
            self._setup_onthefly(stage)
            return
        assert self.chips_dir is not None
        make = lambda split: ChipStoreDataset(self.chips_dir, split=split, tasks=self.tasks)  # noqa: E731
        if stage == "fit":
            self.train_dataset = make("train")
            self.val_dataset = make("val")
        if stage == "validate":
            self.val_dataset = make("val")
        if stage == "test":
            self.test_dataset = make("test")
        if stage == "predict":
            self.predict_dataset = make(None)

    def _setup_onthefly(self, stage: str) -> None:
        from eo_mmcl.datamodules.onthefly import paired_raster_dataset, split_regions

        assert self.catalog_dir is not None
        dataset = paired_raster_dataset(self.catalog_dir, tasks=self.tasks)
        self.predict_dataset = dataset
        if self.chips_dir is None:
            # Nothing says where the splits lie: every split samples the whole footprints.
            warnings.warn(
                "onthefly mode without chips_dir: train, val and test patches come from the "
                "same footprints (give chips_dir to split by the chip store's spatial blocks)",
                UserWarning,
                stacklevel=2,
            )
            self.train_dataset = self.val_dataset = self.test_dataset = dataset
            return
        regions = split_regions(self.chips_dir)
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_dataset", dataset.within(regions[split]))

    def _dataloader_factory(self, split: str) -> DataLoader[dict[str, Tensor]]:
        dataset = self._valid_attribute(f"{split}_dataset", "dataset")
        batch_size = self._valid_attribute(f"{split}_batch_size", "batch_size")
        common: dict[str, Any] = {
            "batch_size": batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
        }
        if self.mode == "onthefly":
            from torchgeo.datasets import stack_samples

            from eo_mmcl.datamodules.onthefly import onthefly_samplers

            geo_sampler = onthefly_samplers(
                dataset, self.patch_size, self.samples_per_epoch, train=split == "train"
            )
            return DataLoader(dataset, sampler=geo_sampler, collate_fn=stack_samples, **common)
        chunk_sampler = ChunkShuffleSampler(dataset, shuffle=split == "train", seed=self.seed)
        # Contrastive and batch-normalised objectives need full batches: a last batch of one
        # chip has no negatives and no batch statistics.
        drop_last = split == "train" and len(dataset) > batch_size
        return DataLoader(dataset, sampler=chunk_sampler, drop_last=drop_last, **common)

    def transfer_batch_to_device(
        self, batch: dict[str, Any], device: torch.device, dataloader_idx: int
    ) -> dict[str, Any]:
        """Move tensors to the device; leave torchgeo's ``crs``/``bounds`` metadata on the host.

        Args:
            batch: The batch.
            device: Target device.
            dataloader_idx: Index of the dataloader.

        Returns:
            The batch on the device.
        """
        return {
            k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v
            for k, v in batch.items()
        }
