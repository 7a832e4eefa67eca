"""Probe throughput: seconds per objective of ``eo-mmcl probe`` (3 seeds, every probe).

Probes the given checkpoints on a chip store (by default the demo's: run ``make demo`` first)
and splits the wall time into embedding (forward passes) and probing (scikit-learn fits), per
objective. The reference is the embedding pass itself: ``probe_over_embed`` says how many times
the probes cost what the network costs. The last line is
``seconds_per_objective=X probe_over_embed=Y chips=N``.

Usage: python benchmarks/probe_throughput.py [--chips runs/demo/tile]
       [--checkpoint runs/demo/train/clip/seed_0/checkpoints/best.ckpt ...] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from eo_mmcl.probe import ProbeConfig, extract_embeddings, load_chip_labels, load_objective
from eo_mmcl.probe.collect import probe_embeddings, train_rows

DEMO = ["supervised", "clip", "cross_self", "coral"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chips", type=Path, default=Path("runs/demo/tile"))
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=None,
        help="checkpoints (default: the demo's "
        "runs/demo/train/<objective>/seed_0/checkpoints/best.ckpt)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    demo = Path("runs/demo/train")
    checkpoints = args.checkpoint or [
        demo / o / "seed_0" / "checkpoints" / "best.ckpt" for o in DEMO
    ]
    labels = load_chip_labels(args.chips)
    config = ProbeConfig(seeds=args.seeds)
    embed_total = probe_total = 0.0
    for path in checkpoints:
        task = load_objective(path)
        start = time.perf_counter()
        emb = extract_embeddings(task, args.chips, labels.store_index)
        embed_s = time.perf_counter() - start
        start = time.perf_counter()
        rows = []
        for seed in range(args.seeds):
            subsample = train_rows(labels, config.train_fraction, 0, seed)
            rows += probe_embeddings(emb, labels, config, subsample, seed, lambda *a: None)
        probe_s = time.perf_counter() - start
        embed_total += embed_s
        probe_total += probe_s
        print(
            f"{task.objective:12s} embed {embed_s:6.2f} s  probes {probe_s:6.2f} s "
            f"({len(rows)} fits, {probe_s / max(len(rows), 1) * 1000:.0f} ms each)"
        )
    n = len(checkpoints)
    print(
        f"seconds_per_objective={(embed_total + probe_total) / n:.2f} "
        f"probe_over_embed={probe_total / max(embed_total, 1e-9):.2f} chips={len(labels.index)}"
    )


if __name__ == "__main__":
    main()
