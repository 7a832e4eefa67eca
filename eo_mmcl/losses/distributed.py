"""Autograd-aware collectives that let the losses see the global batch under DDP."""

from __future__ import annotations

import torch
from lightly.utils import dist as lightly_dist
from torch import Tensor
from torch import distributed as torch_dist
from torch.distributed import nn as dist_nn


def is_distributed() -> bool:
    """Whether more than one process takes part in an initialised process group.

    Returns:
        True only when `torch.distributed` is available, initialised and the world size is > 1.
    """
    return (
        torch_dist.is_available()
        and torch_dist.is_initialized()
        and torch_dist.get_world_size() > 1
    )


def rank() -> int:
    """Rank of this process, 0 outside a process group.

    Returns:
        The global rank.
    """
    return torch_dist.get_rank() if is_distributed() else 0


def check_distributed_available(gather_distributed: bool) -> None:
    """Reject `gather_distributed=True` on a torch build without distributed support.

    Args:
        gather_distributed: The flag passed to a loss.

    Raises:
        ValueError: If gathering is requested but `torch.distributed` is unavailable.
    """
    if gather_distributed and not torch_dist.is_available():
        raise ValueError(
            "gather_distributed=True but torch.distributed is not available in this torch build"
        )


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate `x` from every process along the batch, keeping the gradient path.

    Outside a multi-process group this is the identity. The rows of this process sit at
    `rank() * x.shape[0]`, which is what the contrastive losses use to place their positives.

    Args:
        x: Local tensor, shape (B, ...), with the same B on every process.

    Returns:
        Tensor of shape (world_size * B, ...), ordered by rank.
    """
    if not is_distributed():
        return x
    # lightly's GatherLayer all-reduces the incoming gradients so each rank receives the
    # gradient of the global loss with respect to its own rows.
    return torch.cat(lightly_dist.gather(x), dim=0)


def all_reduce_mean(x: Tensor) -> Tensor:
    """Average `x` over every process, differentiably.

    Used for statistics that sum over the batch (cross-correlation matrices), so that the
    result equals the statistic of the global batch. Outside a multi-process group this is the
    identity.

    Args:
        x: Local tensor, same shape on every process.

    Returns:
        The element-wise mean over processes, same shape as `x`.
    """
    if not is_distributed():
        return x
    # torch.distributed.nn.all_reduce is the autograd-aware variant; the plain collective
    # would silently cut the gradient flowing to other ranks.
    reduced: Tensor = dist_nn.all_reduce(x / torch_dist.get_world_size())
    return reduced
