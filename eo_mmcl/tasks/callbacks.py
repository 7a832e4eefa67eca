"""Training callbacks: throughput and the share of step time spent waiting for data."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer


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
