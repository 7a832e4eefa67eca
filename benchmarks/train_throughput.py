"""Training throughput of the demo's encoders: samples/s, achieved GFLOP/s and the CPU's peak.

The demo's setup by default: its backbone (read from ``pipelines/demo.yaml``), 32 px chips, a
batch of 64, one simulated 768 px scene. For each objective it trains ``--steps`` steps with
Lightning (the device is the best present: CPU here, a GPU with bf16 mixed precision where there
is one), counts the floating-point operations of one training step (forward and backward) with
torch's ``FlopCounterMode``, and sets the achieved rate against the peak of a plain matmul
measured in the same run: the reference that says how much of the machine the step uses.
Channels-last memory layout (the objectives' default) and the contiguous layout are both
measured, so their ratio comes from one run.

The last line, for the first objective in channels-last layout, is
``samples_per_s=X gflops_per_s=Y peak_gflops_per_s=Z utilisation=U data_wait_fraction=W
channels_last_speedup=R device=NAME``.

Usage: python benchmarks/train_throughput.py [--objectives clip,coral] [--chip-size 32]
       [--batch-size 64] [--steps 30] [--size 768] [--num-workers 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning import Trainer, seed_everything
from torch.utils.flop_counter import FlopCounterMode

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.datamodules import PairedS1S2DataModule
from eo_mmcl.objectives import OBJECTIVES
from eo_mmcl.objectives.callbacks import DataWaitMonitor
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog

DEMO = Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml"
PREFIX = "--model.init_args."


def demo_model_args() -> dict[str, Any]:
    """The model options the demo passes to every objective (``train.args`` of demo.yaml)."""
    args = yaml.safe_load(DEMO.read_text())["train"]["args"]
    out: dict[str, Any] = {}
    for key, value in zip(args[::2], args[1::2], strict=True):
        if key.startswith(PREFIX):
            out[key.removeprefix(PREFIX)] = yaml.safe_load(value)
    return out


def peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of a plain float32 matmul, the best of ``repeats`` (the machine's reference)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool start and first-touch page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def step_flops(model: torch.nn.Module, dm: PairedS1S2DataModule) -> float:
    """Floating-point operations of one training step (forward and backward) per sample."""
    batch = next(iter(dm.train_dataloader()))
    with FlopCounterMode(display=False) as counter:
        loss, _ = model.compute_loss(batch)  # type: ignore[operator]
        loss.total.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()) / int(batch["image_s2"].shape[0])


def measure(
    chips: Path, objective: str, args: argparse.Namespace, channels_last: bool
) -> dict[str, float]:
    """Train ``args.steps`` steps; samples/s, data-wait fraction and GFLOP/s achieved."""
    seed_everything(0)
    model = OBJECTIVES[objective](**demo_model_args(), channels_last=channels_last)
    dm = PairedS1S2DataModule(chips, batch_size=args.batch_size, num_workers=args.num_workers)
    dm.setup("fit")
    flops = step_flops(model, dm)
    monitor = DataWaitMonitor(skip=3)
    cuda = torch.cuda.is_available()
    trainer = Trainer(
        max_steps=args.steps,
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
    rate = monitor.samples_per_s
    return {
        "samples_per_s": rate,
        "data_wait_fraction": monitor.data_wait_fraction,
        "gflops_per_sample": flops / 1e9,
        "gflops_per_s": rate * flops / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objectives", default="clip,coral")
    parser.add_argument("--chip-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    objectives = [o for o in args.objectives.split(",") if o]
    unknown = sorted(set(objectives) - set(OBJECTIVES))
    if unknown:
        parser.error(f"unknown objectives {unknown}; choose from {sorted(OBJECTIVES)}")
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = peak_gflops()
    print(f"device={device} threads={torch.get_num_threads()} peak_gflops_per_s={peak:.1f}")
    results: dict[tuple[str, bool], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_scenes(root / "scenes", SimulationConfig(size=args.size, seed=0))
        build_catalog([folder_source(root / "scenes")], root / "catalog")
        config = TileConfig(chip_size=args.chip_size, max_cloud=0.5, split_block=2,
                            split_fractions=(0.9, 0.05, 0.05))  # fmt: skip
        tile_catalog(root / "catalog", root / "chips", config, workers=0)
        for objective in objectives:
            for channels_last in (True, False):
                r = measure(root / "chips", objective, args, channels_last)
                results[(objective, channels_last)] = r
                print(
                    f"objective={objective} channels_last={channels_last} "
                    f"chip={args.chip_size} batch_size={args.batch_size} "
                    f"samples_per_s={r['samples_per_s']:.1f} "
                    f"gflops_per_sample={r['gflops_per_sample']:.3f} "
                    f"gflops_per_s={r['gflops_per_s']:.1f} "
                    f"utilisation={r['gflops_per_s'] / peak:.2f} "
                    f"data_wait_fraction={r['data_wait_fraction']:.3f}"
                )
    first = results[(objectives[0], True)]
    speedup = first["samples_per_s"] / results[(objectives[0], False)]["samples_per_s"]
    print(
        f"samples_per_s={first['samples_per_s']:.1f} gflops_per_s={first['gflops_per_s']:.1f} "
        f"peak_gflops_per_s={peak:.1f} utilisation={first['gflops_per_s'] / peak:.2f} "
        f"data_wait_fraction={first['data_wait_fraction']:.3f} "
        f"channels_last_speedup={speedup:.2f} device={device.replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
