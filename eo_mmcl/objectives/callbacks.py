"""Training callbacks: the every-epoch ``last.ckpt``, throughput and the data-wait share."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``: this run's state at the end of every training epoch, overwritten in place.

    Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it
    saves a top-k checkpoint, so beside a monitored metric it holds the best epoch, not the
    last one; and its version counter makes a second run into the same folder write
    ``last-v1.ckpt``, leaving ``last.ckpt`` to the earlier run. This is Lightning's own
    ``ModelCheckpoint`` keeping one unmonitored checkpoint named ``last``: saved at every
    training epoch end, which Lightning calls after validation, so the top-k callback and early
    stopping have updated the state this file carries; no version counter, so it replaces the
    file of an earlier run. Being its own class gives it a state key apart from any unmonitored
    ``ModelCheckpoint`` of a config (Lightning keys callback states by class and monitor).

    Args:
        dirpath: Folder of the checkpoints (None: Lightning's default, as for ModelCheckpoint).
    """

    def __init__(self, dirpath: str | Path | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )

    @property
    def path(self) -> str:
        """The file written last (empty before the first epoch ends)."""
        return self.best_model_path


def install_last_checkpoint(trainer: Trainer) -> LastCheckpoint | None:
    """Give a trainer that keeps checkpoints a :class:`LastCheckpoint` beside its own callbacks.

    It writes into the folder of the ``ModelCheckpoint`` that asks for ``save_last`` (else of
    the first one). Every other ``ModelCheckpoint`` loses its ``save_last``: with it, it would
    write the best epoch to ``last.ckpt`` (or to ``last-v1.ckpt`` beside this callback's file).

    Args:
        trainer: A trainer, before ``fit``.

    Returns:
        The trainer's LastCheckpoint, or None if it keeps no checkpoints at all.
    """
    callbacks = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
    if not callbacks:
        return None
    last = next((cb for cb in callbacks if isinstance(cb, LastCheckpoint)), None)
    # The folder of the callback that asked for last.ckpt, else the first one's.
    home = next((cb for cb in callbacks if cb.save_last), callbacks[0])
    for callback in callbacks:
        if callback is not last and callback.save_last:
            log.info("last.ckpt is written every epoch by LastCheckpoint, not by %s", callback)
            callback.save_last = None
    if last is None:
        # Checkpoint callbacks run last, in order: this one after the configured ones. (The
        # list is set by Lightning's callback connector, undeclared on Trainer.)
        last = LastCheckpoint(dirpath=home.dirpath)
        trainer.callbacks.append(last)  # type: ignore[attr-defined]
    return last


def last_checkpoint(trainer: Trainer) -> str:
    """The ``last.ckpt`` that a trainer's :class:`LastCheckpoint` wrote, or ``""``.

    Args:
        trainer: A trainer after ``fit``.

    Returns:
        The path, or ``""`` where no epoch ended or checkpoints are off.
    """
    found = (cb for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint))
    return next((cb.path for cb in found), "")


class DataWaitMonitor(Callback):
    """Measure samples/s and the fraction of wall time spent waiting for batches.

    The wait is the time from the end of one training batch to the start of the next (the
    dataloader's fetch, collation and host-to-device copy); the compute is the time inside
    the batch hooks. On CUDA the device is synchronised at each batch end so that asynchronous
    kernels are counted as compute, not as wait. The first ``skip`` batches of the run (warm-up,
    worker start) and the gaps between epochs are left out. Logs ``perf/samples_per_s`` and
    ``perf/data_wait_fraction``.

    Args:
        skip: Batches ignored at the start of the run.
    """

    def __init__(self, skip: int = 2) -> None:
        self.skip = skip
        self.reset()

    def reset(self) -> None:
        """Forget all measurements."""
        self.wait = 0.0
        self.compute = 0.0
        self.samples = 0
        self._batch_start: float | None = None
        self._last_end: float | None = None
        self._seen = 0

    @property
    def samples_per_s(self) -> float:
        """Training samples per second of wall time (wait and compute)."""
        total = self.wait + self.compute
        return self.samples / total if total > 0 else float("nan")

    @property
    def data_wait_fraction(self) -> float:
        """Share of wall time spent waiting for data."""
        total = self.wait + self.compute
        return self.wait / total if total > 0 else float("nan")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Leave out the gap across epoch boundaries (validation, worker restarts)."""
        self._last_end = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Close the wait interval."""
        now = time.perf_counter()
        if self._last_end is not None and self._seen >= self.skip:
            self.wait += now - self._last_end
        self._batch_start = now

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Close the compute interval and log the running figures."""
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        now = time.perf_counter()
        if self._batch_start is not None and self._seen >= self.skip:
            self.compute += now - self._batch_start
            self.samples += int(batch["image_s2"].shape[0])
            pl_module.log("perf/samples_per_s", self.samples_per_s)
            pl_module.log("perf/data_wait_fraction", self.data_wait_fraction)
        self._seen += 1
        self._last_end = now
