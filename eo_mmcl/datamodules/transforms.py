"""On-device batch transforms: per-modality normalisation and paired geometric augmentation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn


class PairedS1S2Transform(nn.Module):
    """Normalise each modality with its own statistics and augment both with one geometry.

    Augmentations are flips and 90-degree rotations: exact pixel permutations, so class masks and
    the validity mask stay exact and S1 stays registered to S2. With ``independent_views`` the two
    modalities get independent draws (masks and ``valid`` then follow the S2 view).
    Missing values (NaN backscatter) become 0 after normalisation, i.e. the band mean; ``valid``
    tells where they were.

    Args:
        mean_s1: Per-band mean of S1 (dB), or None without S1.
        std_s1: Per-band standard deviation of S1.
        mean_s2: Per-band mean of S2.
        std_s2: Per-band standard deviation of S2.
        augment: Apply random geometry (training); False: normalise only.
        independent_views: Draw S1 and S2 geometry independently.
    """

    mean_s1: Tensor
    std_s1: Tensor
    mean_s2: Tensor
    std_s2: Tensor

    def __init__(
        self,
        mean_s1: Sequence[float] | None,
        std_s1: Sequence[float] | None,
        mean_s2: Sequence[float],
        std_s2: Sequence[float],
        augment: bool = False,
        independent_views: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer(
            "mean_s2", torch.tensor(mean_s2, dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std_s2", torch.tensor(std_s2, dtype=torch.float32).view(1, -1, 1, 1))
        self.has_s1 = mean_s1 is not None and std_s1 is not None
        if self.has_s1:
            assert mean_s1 is not None and std_s1 is not None
            self.register_buffer(
                "mean_s1", torch.tensor(mean_s1, dtype=torch.float32).view(1, -1, 1, 1)
            )
            self.register_buffer(
                "std_s1", torch.tensor(std_s1, dtype=torch.float32).view(1, -1, 1, 1)
            )
        self.augment = augment
        self.independent_views = independent_views
        self.flips = K.AugmentationSequential(
            K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5), data_keys=["input"]
        )

    @classmethod
    def from_statistics(
        cls,
        statistics: Mapping[str, Any],
        augment: bool = False,
        independent_views: bool = False,
    ) -> PairedS1S2Transform:
        """The transform of a chip store's (or a checkpoint's) normalisation statistics.

        The one place the statistics' layout is read: the datamodule, the export and the probes
        build their transforms here.

        Args:
            statistics: ``{'s2': {'mean': [...], 'std': [...]}, 's1': {...}}`` (``s1`` optional).
            augment: Apply random geometry (training).
            independent_views: Draw each modality's geometry separately.

        Returns:
            The transform.
        """
        s1, s2 = statistics.get("s1"), statistics["s2"]
        return cls(
            s1["mean"] if s1 else None,
            s1["std"] if s1 else None,
            s2["mean"],
            s2["std"],
            augment,
            independent_views,
        )

    def normalise(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Normalise the images of a batch (other keys pass through).

        Args:
            batch: Batch with ``image_s2`` and optionally ``image_s1``.

        Returns:
            The batch with normalised, NaN-free float images.
        """
        out = dict(batch)
        out["image_s2"] = torch.nan_to_num((batch["image_s2"].float() - self.mean_s2) / self.std_s2)
        if "image_s1" in batch and self.has_s1:
            out["image_s1"] = torch.nan_to_num(
                (batch["image_s1"].float() - self.mean_s1) / self.std_s1
            )
        return out

    def _geometric(self, x: Tensor) -> Tensor:
        x = self.flips(x)
        # kornia's RandomRotation90 resamples through an affine warp, which blends neighbouring
        # pixels of class masks; torch.rot90 is an exact permutation.
        turns = torch.randint(0, 4, (x.shape[0],), device=x.device)
        out = x.clone()
        for k in range(1, 4):
            chosen = turns == k
            if chosen.any():
                out[chosen] = torch.rot90(x[chosen], k, dims=(-2, -1))
        return out

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Normalise, then (if enabled) augment.

        Args:
            batch: A collated batch of chip-store or on-the-fly samples.

        Returns:
            The transformed batch.
        """
        out = self.normalise(batch)
        if not self.augment:
            return out
        # Every spatial tensor goes through one geometric draw as extra channels.
        spatial = [
            k
            for k, v in out.items()
            if isinstance(v, Tensor) and v.ndim >= 3 and k not in ("image_s1", "image_s2")
        ]
        s2_stack = [out["image_s2"]] + [out[k].unsqueeze(1).float() for k in spatial]
        has_s1 = "image_s1" in out
        if has_s1 and not self.independent_views:
            s2_stack.insert(0, out["image_s1"])
        sizes = [t.shape[1] for t in s2_stack]
        moved = torch.split(self._geometric(torch.cat(s2_stack, dim=1)), sizes, dim=1)
        parts = list(moved)
        if has_s1 and not self.independent_views:
            out["image_s1"] = parts.pop(0)
        elif has_s1:
            out["image_s1"] = self._geometric(out["image_s1"])
        out["image_s2"] = parts.pop(0)
        for key, value in zip(spatial, parts, strict=True):
            out[key] = value.squeeze(1).to(batch[key].dtype)
        return out
