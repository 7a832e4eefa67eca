"""Seeded minibatch training of a vector objective, and embedding of whole splits."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.data import FloatArray
from eo_mmcl.theory.objectives import VectorObjective


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings.

    Args:
        steps: Number of Adam steps.
        batch_size: Pairs per step; the other pairs of the batch are the contrastive negatives.
        lr: Adam learning rate (cosine-decayed to zero, so the last steps settle).
        seed: Seed of the initialisation, the batches, the views and the masks.

    Raises:
        ConfigError: If a count or the learning rate is not positive, or the batch has fewer
            than two pairs (no negatives).
    """

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 (negatives), got {self.batch_size}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class TrainResult:
    """What a training run reports.

    Args:
        final_loss: Mean loss over the last 10% of the steps.
        seconds: Wall time of the run.
    """

    final_loss: float
    seconds: float


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator with a fixed seed, for batches, views and masks.

    Args:
        seed: The seed.

    Returns:
        The generator.
    """
    return torch.Generator().manual_seed(seed)


def train_objective(
    objective: VectorObjective, x1: FloatArray, x2: FloatArray, config: TrainConfig
) -> TrainResult:
    """Train an objective's encoders on paired observations.

    Build the objective inside :func:`seeded_init` for a reproducible initialisation; batches,
    views and masks come from a generator seeded here with ``config.seed``.

    Args:
        objective: The objective (modified in place).
        x1: Modality-1 training observations, shape (n, d1).
        x2: Modality-2 training observations, shape (n, d2).
        config: Optimiser settings.

    Returns:
        The final loss and the wall time.

    Raises:
        ConfigError: If there are fewer pairs than one batch.
    """
    n = x1.shape[0]
    if n < config.batch_size:
        raise ConfigError(f"{n} training pairs are fewer than one batch ({config.batch_size})")
    t1 = torch.as_tensor(x1, dtype=torch.float32)
    t2 = torch.as_tensor(x2, dtype=torch.float32)
    generator = seeded_generator(config.seed + 1)
    optimiser = torch.optim.Adam(objective.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
    tail = max(1, config.steps // 10)
    losses: list[float] = []
    start = time.perf_counter()
    objective.train()
    for _ in range(config.steps):
        batch = torch.randint(0, n, (config.batch_size,), generator=generator)
        loss = objective.loss(t1[batch], t2[batch], generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    objective.eval()
    return TrainResult(
        final_loss=float(np.mean(losses[-tail:])), seconds=time.perf_counter() - start
    )


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules inside this block for a reproducible initialisation.

    Seeds torch's global generator inside a fork of its state, so the caller's random stream is
    left as it was.

    Args:
        seed: The seed.

    Yields:
        Nothing.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def embed_split(
    objective: VectorObjective, x1: FloatArray, x2: FloatArray
) -> dict[str, FloatArray]:
    """Embed a whole split with frozen encoders.

    Args:
        objective: A (trained or untouched) objective.
        x1: Modality-1 observations, shape (n, d1).
        x2: Modality-2 observations, shape (n, d2).

    Returns:
        The objective's embeddings as float64 arrays, keyed as in ``objective.embed``.
    """
    objective.eval()
    out = objective.embed(
        torch.as_tensor(x1, dtype=torch.float32), torch.as_tensor(x2, dtype=torch.float32)
    )
    return {name: z.double().numpy() for name, z in out.items()}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op torch threads, then restore the previous count.

    The lab's matrices are tiny: synchronising threads costs more than it saves, and on a
    machine shared with other jobs spinning threads slow a run down many times over.

    Args:
        n: Number of threads inside the block.

    Yields:
        Nothing.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
