"""Training on a shared machine: how much a step slows down when other torch processes compete.

Runs the demo's ``clip`` training step (quarter-width ResNet-10-T, 32 px chips, batch 64) in
``--processes`` concurrent processes, first with libgomp's default spin-waiting (torch imported
before eo_mmcl), then with eo_mmcl's setting (``eo_mmcl.OPENMP_SPIN_COUNT``, applied on import),
and compares each with one process on a quiet machine. The fair slowdown of N processes on C
cores is N/C; busy-waiting OpenMP threads make it far worse. The last line is
``slowdown_default=X slowdown_eo_mmcl=Y fair=Z``.

Usage: python benchmarks/train_contention.py [--processes 4] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys, time
if sys.argv[1] == "default":
    import torch  # loads libgomp before eo_mmcl can set its spin count
import eo_mmcl, torch
from eo_mmcl.objectives import CLIPObjective
torch.manual_seed(0)
m = CLIPObjective(backbone="resnet10t", output_stride=8,
             backbone_kwargs={"channels": [16, 32, 64, 128], "stem_width": 16})
opt = torch.optim.AdamW(m.parameters(), 1e-3)
b = {"image_s1": torch.randn(64, 2, 32, 32), "image_s2": torch.randn(64, 12, 32, 32)}
def step():
    loss, _ = m.compute_loss(b); opt.zero_grad(); loss.total.backward(); opt.step()
step()
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    step()
print(time.perf_counter() - t)
"""


def _run(mode: str, processes: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, str(steps)], stdout=subprocess.PIPE, env=env
        )
        for _ in range(processes)
    ]
    times = [float(child.communicate()[0]) for child in children]
    return max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    results = {}
    for mode in ("default", "eo_mmcl"):
        quiet = _run(mode, 1, args.steps)
        shared = _run(mode, args.processes, args.steps)
        results[mode] = shared / quiet
        print(
            f"mode={mode} quiet_s={quiet:.2f} shared_s={shared:.2f} processes={args.processes} "
            f"cores={cores} slowdown={shared / quiet:.1f}"
        )
    print(
        f"slowdown_default={results['default']:.1f} slowdown_eo_mmcl={results['eo_mmcl']:.1f} "
        f"fair={args.processes / cores:.1f}"
    )


if __name__ == "__main__":
    main()
