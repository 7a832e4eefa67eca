"""Two augmented views of a paired batch, made on the device with kornia."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import Tensor, nn


class PairedViews(nn.Module):
    """Random resized crops and flips shared by S1 and S2, then per-modality noise and gain.

    The geometry is drawn once per view and applied to both modalities, so the two sensors of
    a view still see the same ground (what cross-modal terms compare). Each modality then gets
    additive Gaussian noise and a random per-band gain, the multispectral analogue of colour
    jitter. Inputs are normalised images.

    Args:
        crop_scale: Area range of the random resized crop.
        noise_std: Standard deviation of the additive noise (normalised units).
        gain_std: Standard deviation of the per-band multiplicative gain.
    """

    def __init__(
        self,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        noise_std: float = 0.1,
        gain_std: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}")
        if noise_std < 0 or gain_std < 0:
            raise ValueError("noise_std and gain_std must be >= 0")
        self.crop_scale = crop_scale
        self.noise_std = noise_std
        self.gain_std = gain_std
        self._geometry: nn.Module | None = None
        self._size: tuple[int, int] | None = None

    def _geometric(self, size: tuple[int, int]) -> nn.Module:
        if self._geometry is None or self._size != size:
            self._geometry = K.AugmentationSequential(
                K.RandomResizedCrop(size, scale=self.crop_scale),
                K.RandomHorizontalFlip(),
                K.RandomVerticalFlip(),
                data_keys=["input"],
            )
            self._size = size
        return self._geometry

    def _photometric(self, x: Tensor) -> Tensor:
        gain = 1.0 + self.gain_std * torch.randn(x.shape[0], x.shape[1], 1, 1, device=x.device)
        return x * gain + self.noise_std * torch.randn_like(x)

    def view(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One augmented view of the images of ``batch``.

        Args:
            batch: Batch with ``image_s1`` (B, C1, H, W) and/or ``image_s2`` (B, C2, H, W).

        Returns:
            ``{'image_s1', 'image_s2'}`` of the view (only the modalities present).
        """
        keys = [k for k in ("image_s1", "image_s2") if k in batch]
        sizes = [batch[k].shape[1] for k in keys]
        stacked = torch.cat([batch[k].float() for k in keys], dim=1)
        moved = self._geometric((int(stacked.shape[-2]), int(stacked.shape[-1])))(stacked)
        parts = torch.split(moved, sizes, dim=1)
        return {k: self._photometric(p) for k, p in zip(keys, parts, strict=True)}

    def forward(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Two independent views.

        Args:
            batch: The (normalised) batch.

        Returns:
            ``(view_a, view_b)``.
        """
        return self.view(batch), self.view(batch)
