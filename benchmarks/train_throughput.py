"""Training throughput: samples/s and the fraction of step time spent waiting for data.

resnet18 backbones under the ``clip`` objective (and ``coral`` with ``--objective coral``) on a
simulated chip store, at 64 px and 128 px chips, on the best device present (CPU here; a GPU
with bf16 mixed precision where there is one). The reference is the step itself: the data-wait
fraction says how much of the wall time the datamodule costs on top of compute. The last line,
for the 64 px case, is ``samples_per_s=X data_wait_fraction=Y device=NAME``.

Usage: python benchmarks/train_throughput.py [--size 2048] [--steps 40] [--batch-size 64]
       [--num-workers 2] [--objective clip]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from lightning import Trainer, seed_everything

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.datamodules import PairedS1S2DataModule
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tasks import OBJECTIVES
from eo_mmcl.tasks.callbacks import DataWaitMonitor
from eo_mmcl.tiling import TileConfig, tile_catalog


def _measure(
    chips: Path, objective: str, steps: int, batch_size: int, workers: int
) -> tuple[float, float, str]:
    seed_everything(0)
    kwargs = {"output_stride": 16, "fusion_dim": 128} if objective in ("comm", "coral") else {}
    model = OBJECTIVES[objective](backbone="resnet18", **kwargs)
    dm = PairedS1S2DataModule(chips, batch_size=batch_size, num_workers=workers)
    monitor = DataWaitMonitor(skip=3)
    cuda = torch.cuda.is_available()
    trainer = Trainer(
        max_steps=steps,
        limit_val_batches=0,
        accelerator="auto",
        precision="bf16-mixed" if cuda else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(model, dm)
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    return monitor.samples_per_s, monitor.data_wait_fraction, device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--objective", default="clip", choices=sorted(OBJECTIVES))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_scenes(
            root / "scenes", SimulationConfig(size=args.size, seed=0, scenes=args.scenes)
        )
        build_catalog([folder_source(root / "scenes")], root / "catalog")
        for chip in (128, 64):
            config = TileConfig(
                chip_size=chip, max_cloud=0.5, split_block=2, split_fractions=(0.9, 0.05, 0.05)
            )
            tile_catalog(root / "catalog", root / f"chips{chip}", config, workers=0)
            rate, wait, device = _measure(
                root / f"chips{chip}", args.objective, args.steps, args.batch_size, args.num_workers
            )
            results[chip] = (rate, wait, device)
            print(
                f"objective={args.objective} chip={chip} batch_size={args.batch_size} "
                f"workers={args.num_workers} samples_per_s={rate:.1f} "
                f"data_wait_fraction={wait:.3f} device={device}"
            )
    rate, wait, device = results[64]
    print(
        f"samples_per_s={rate:.1f} data_wait_fraction={wait:.3f} device={device.replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
