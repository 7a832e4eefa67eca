"""Frozen embeddings through Lightning's predict loop: one way for chips and export windows.

The objective's :meth:`~eo_mmcl.objectives.Objective.predict_step` embeds each batch (what its
``predict_outputs`` asks for); :class:`EmbeddingCollector`, a Lightning prediction writer,
keeps every batch's outputs as NumPy in batch order. The export's chip tables and raster
blocks and the probes' chip embeddings all run through :func:`predict_embeddings` (as
terratorch's embedding task does), so there is one loop to read, time and move to a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
from lightning import LightningModule, Trainer
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from eo_mmcl.datamodules.chipstore import ChipStoreDataset
from eo_mmcl.datamodules.transforms import PairedS1S2Transform
from eo_mmcl.errors import ConfigError
from eo_mmcl.objectives import Objective
from eo_mmcl.objectives.base import PredictOutputs

#: One predict loop at a time per process. The threads of an in-process Dask worker share one
#: loaded model, and a loop sets what the model's predict step returns and attaches its trainer
#: to it; torch's intra-op threads already use every core, so little is lost.
_PREDICTING = threading.Lock()


class EmbeddingCollector(BasePredictionWriter):
    """A prediction writer that keeps each batch's outputs as float32 NumPy, in batch order.

    Lightning's own ``return_predictions`` would hold every batch's tensors until the loop
    ends and then hand them back nested per dataloader; this keeps NumPy parts per key (on
    the host, whatever the device) and concatenates them once.
    """

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.parts: dict[str, list[np.ndarray]] = {}

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Keep one batch's outputs.

        Args:
            trainer: The trainer.
            pl_module: The objective.
            prediction: ``predict_step``'s dict of tensors.
            batch_indices: Sample indices of the batch (unused: batches come in order).
            batch: The batch.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.
        """
        for key, value in prediction.items():
            if key != "index":
                self.parts.setdefault(key, []).append(value.detach().float().cpu().numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        """Every batch's outputs, concatenated per key (the parts are released as it goes).

        Returns:
            ``{key: (N, ...) float32}``.
        """
        out = {}
        for key in list(self.parts):
            out[key] = np.concatenate(self.parts.pop(key))  # dense maps: one copy at a time
        return out


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-trainer banner and its hints on small loaders.

    A probe run builds one trainer per checkpoint and the export one per raster block: the
    "GPU available" lines and the "few workers" hint would repeat for each.
    """
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*predict_dataloader.*")
            yield
    finally:
        logger.setLevel(level)


def predict_embeddings(
    objective: Objective,
    loader: Iterable[dict[str, Tensor]],
    outputs: PredictOutputs,
    accelerator: str = "auto",
    show_progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run Lightning's predict loop over normalised batches and return the embeddings.

    Args:
        objective: A trained (or untrained) objective.
        loader: Normalised batches (a DataLoader).
        outputs: Which embedding keys, and whether dense maps.
        accelerator: Lightning accelerator: ``auto`` (a GPU when there is one), ``cpu``, ...
            Float32 everywhere: embeddings are measured, and bf16 would round them to 8 bits
            of mantissa. Threads of one process share the model, one predict loop at a time.
        show_progress: Show Lightning's progress bar.

    Returns:
        ``{key: (N, ...) float32}`` in the loader's order.

    Raises:
        ConfigError: If the accelerator is not available here (as :func:`check_accelerator`).
    """
    collector = EmbeddingCollector()
    with _PREDICTING, _quiet_lightning():
        objective.predict_outputs = outputs
        try:
            trainer = _trainer(accelerator, show_progress, [collector])
            trainer.predict(objective, dataloaders=loader, return_predictions=False)
        finally:
            objective.predict_outputs = PredictOutputs()
    return collector.arrays()


def _trainer(accelerator: str, show_progress: bool, callbacks: list[Callback]) -> Trainer:
    try:
        return Trainer(
            accelerator=accelerator,
            devices=1,
            precision="32-true",
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=show_progress,
            callbacks=callbacks,
        )
    except MisconfigurationException as err:  # e.g. "gpu" on a machine without one
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"--accelerator {accelerator}: not available here ({first})") from err


def check_accelerator(accelerator: str) -> None:
    """Check, before any work, that the predict loop can run on ``accelerator`` here.

    Args:
        accelerator: A Lightning accelerator name.

    Raises:
        ConfigError: If Lightning cannot use it on this machine (no GPU for ``gpu``).
    """
    with _quiet_lightning():
        _trainer(accelerator, False, [])


def batch_normaliser(
    transform: PairedS1S2Transform, s1_channels: int | None = None
) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """A function that normalises a raw batch with the model's statistics.

    Args:
        transform: The normalisation the encoders were trained with (NaN becomes the band
            mean, 0 after normalising).
        s1_channels: Give batches without S1 zeros of this many channels (the normalised
            band mean), for keys that need both sensors on S2-only data; None: leave them.

    Returns:
        The function.
    """

    def normalise(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = transform(batch)
        if s1_channels is not None and "image_s1" not in out:
            b, _, h, w = out["image_s2"].shape
            out["image_s1"] = torch.zeros(b, s1_channels, h, w)
        return out

    return normalise


def chip_loader(
    dataset: ChipStoreDataset,
    positions: Sequence[int],
    normalise: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    batch_size: int = 64,
) -> DataLoader[dict[str, Tensor]]:
    """Chips of a store at the given dataset positions, in that order, as normalised batches.

    Args:
        dataset: The chip store.
        positions: Dataset positions (not store rows), in the order wanted.
        normalise: :func:`batch_normaliser`.
        batch_size: Chips per batch.

    Returns:
        The loader (in-process: the store reads whole chunks per batch).
    """
    subset: Dataset[dict[str, Tensor]] = Subset(dataset, list(positions))
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=lambda samples: normalise(default_collate(samples)),
    )


class WindowBatches(Dataset[dict[str, Tensor]]):
    """Batches of export windows, each item one batch (the windows are strided views).

    Args:
        views: Per sensor, ``(rows, cols, C, window, window)`` views of the block's pixels
            (:func:`~eo_mmcl.embed.windows.window_views`).
        batch_size: Windows per batch, taken row-major over the lattice.
    """

    def __init__(self, views: dict[str, np.ndarray], batch_size: int) -> None:
        self.views = views
        rows, cols = next(iter(views.values())).shape[:2]
        self.cols = cols
        self.total = rows * cols
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.total // self.batch_size)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        start = index * self.batch_size
        ii, jj = np.divmod(np.arange(start, min(start + self.batch_size, self.total)), self.cols)
        return {
            f"image_{sensor}": torch.from_numpy(np.ascontiguousarray(view[ii, jj]))
            for sensor, view in self.views.items()
        }


def window_loader(
    views: dict[str, np.ndarray],
    normalise: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    batch_size: int,
) -> DataLoader[dict[str, Tensor]]:
    """The windows of an export block as normalised batches, row-major over the lattice.

    Args:
        views: Per sensor, the block's window views.
        normalise: :func:`batch_normaliser`.
        batch_size: Windows per batch.

    Returns:
        The loader (each item of :class:`WindowBatches` is already a batch).
    """
    # With batch_size=None the collate function gets one item, here a whole batch (torch's
    # annotation assumes a list of samples).
    collate = cast(Callable[[list[Any]], Any], normalise)
    return DataLoader(WindowBatches(views, batch_size), batch_size=None, collate_fn=collate)
