"""Embedding export overhead and memory: export time against pure inference on the same windows.

On a simulated S1/S2 pair, ``eo-mmcl embed`` (in-process, ``workers=0``, so both sides use the
same torch threads) exports the ``clip`` embeddings ``s1``, ``s2`` and ``joint`` of the whole
scene: reading S2, resampling S1 onto the S2 grid, embedding the windows, blending, quantising
(float16) and writing the COGs. Pure inference runs the same model on as many windows of the
same size, in batches of the same size, from tensors already in memory. The overhead ratio is
export time / inference time. Peak RSS is that of a fresh process running the export, at two
scene sizes (the larger has 4x the area): it must not grow with the scene. The model is a
randomly initialised resnet18 ``clip`` task (throughput does not depend on training); previews
and chip tables are left out (they are not part of the per-window path).

The last line is ``overhead_ratio=X rss_growth=Y`` (X at the larger scene; Y = peak RSS at the
larger scene / at the smaller).

Times are the best of ``--repeats`` runs (export and inference alternate), since the machine may
be shared.

Usage: python benchmarks/export_throughput.py [--sizes 512 1024] [--stride 8] [--window 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning
import torch

from eo_mmcl.bands import S1_BANDS, S2_L2A_BANDS
from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.embed import EmbedConfig, WindowGrid
from eo_mmcl.embed.run import _block_side
from eo_mmcl.objectives import CLIPObjective
from eo_mmcl.simulate import SimulationConfig, simulate_scenes

CHILD = """
import json, math, resource, sys, time

def peak_rss_mb():
    # This process's own high-water mark: ru_maxrss survives fork+exec on Linux and would
    # report the parent's RSS when that is larger.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy as np, torch
from eo_mmcl.embed import EmbedConfig, EmbeddingModel, export_embeddings
from eo_mmcl.objectives.base import PredictOutputs
args = json.loads(sys.argv[1])
config = EmbedConfig(modality="all", stride=args["stride"], window=args["window"],
                     step=args["step"], batch_size=args["batch"], preview=False)
t = time.perf_counter()
if args["mode"] == "export":
    export_embeddings(args["ckpt"], args["catalog"], args["out"], config, workers=0, force=True)
else:
    model = EmbeddingModel.load(args["ckpt"])
    norm = model.transform()
    keys = model.keys("all")
    n = args["windows"]
    w = args["window"]
    rng = np.random.default_rng(0)
    s2 = (rng.random((args["batch"], 12, w, w), dtype=np.float32) * 3000).astype(np.float32)
    s1 = (rng.normal(-12, 4, (args["batch"], 2, w, w))).astype(np.float32)
    # The objective's predict step alone (what the export's predict loop runs per batch).
    model.module.predict_outputs = PredictOutputs(keys=tuple(keys))
    for start in range(0, n, args["batch"]):
        b = min(args["batch"], n - start)
        batch = norm({"image_s1": torch.from_numpy(s1[:b]), "image_s2": torch.from_numpy(s2[:b])})
        with torch.no_grad():
            model.module.predict_step(batch, start)
print(json.dumps({"s": time.perf_counter() - t,
                  "rss": peak_rss_mb()}))
"""


def _child(**args: object) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _checkpoint(path: Path) -> None:
    """A randomly initialised clip task saved the way Lightning saves one."""
    torch.manual_seed(0)
    task = CLIPObjective()
    meta = {
        "bands": {"s1": list(S1_BANDS[:2]), "s2": list(S2_L2A_BANDS)},
        "normalisation": {
            "s1": {"bands": list(S1_BANDS[:2]), "mean": [-12.0, -19.0], "std": [4.0, 4.0]},
            "s2": {"bands": list(S2_L2A_BANDS), "mean": [1500.0] * 12, "std": [1000.0] * 12},
        },
        "chips_dir": "",
    }
    torch.save(
        {
            "state_dict": task.state_dict(),
            "hyper_parameters": dict(task.hparams),
            "pytorch-lightning_version": lightning.__version__,
            "eo_mmcl": {"objective": "clip", "version": "bench", **meta},
        },
        path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--step", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    small, large = sorted(args.sizes)
    rss: dict[int, float] = {}
    ratio = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = root / "clip.ckpt"
        _checkpoint(ckpt)
        for size in (small, large):
            scenes, catalog = root / f"scenes{size}", root / f"catalog{size}"
            simulate_scenes(scenes, SimulationConfig(size=size, seed=0))
            build_catalog([folder_source(scenes)], catalog)
            common = {
                "ckpt": str(ckpt),
                "catalog": str(catalog),
                "out": str(root / f"out{size}"),
                "stride": args.stride,
                "window": args.window,
                "step": args.step,
                "batch": args.batch,
            }
            # Best of --repeats runs, export and inference alternating: the machine is shared.
            exports, infers = [], []
            # As many windows as the export ran: the lattice of each of its output blocks.
            config = EmbedConfig(stride=args.stride, window=args.window, step=args.step)
            grid = WindowGrid(size, size, args.window, args.stride, args.step, _block_side(config))
            windows = 0
            for r0, c0, rows, cols in grid.blocks():
                ri = grid.block_lattice(r0, rows, grid.out_height)
                ci = grid.block_lattice(c0, cols, grid.out_width)
                windows += (ri[1] - ri[0] + 1) * (ci[1] - ci[0] + 1)
            for _ in range(args.repeats):
                exports.append(_child(mode="export", **common))
                infers.append(_child(mode="infer", windows=windows, **common))
            export = min(exports, key=lambda r: r["s"])
            infer = min(infers, key=lambda r: r["s"])
            export["rss"] = max(r["rss"] for r in exports)
            km2 = (size * 10 / 1000) ** 2
            ratio = export["s"] / infer["s"]
            rss[size] = export["rss"]
            print(
                f"size={size} windows={windows} export_s={export['s']:.2f} "
                f"inference_s={infer['s']:.2f} overhead={ratio - 1:+.1%} "
                f"km2_per_s={km2 / export['s']:.3f} peak_rss_mb={export['rss']:.0f}"
            )
    print(f"overhead_ratio={ratio:.3f} rss_growth={rss[large] / rss[small]:.3f}")


if __name__ == "__main__":
    main()
