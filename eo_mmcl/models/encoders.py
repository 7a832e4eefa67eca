"""The paired Sentinel-1/Sentinel-2 encoder: one timm backbone per sensor, read from a batch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from eo_mmcl.errors import ConfigError
from eo_mmcl.models.backbone import BackboneFeatures, ModalityEncoder

#: Modality name -> the batch key the datamodules use for its normalised chips.
MODALITY_KEYS: dict[str, str] = {"s1": "image_s1", "s2": "image_s2"}


class PairedEncoder(nn.Module):
    """A Sentinel-1 and a Sentinel-2 `ModalityEncoder`, applied to a datamodule batch.

    Each method reads `batch["image_s1"]` (B, C1, H, W) and `batch["image_s2"]`
    (B, C2, H, W) and returns a dict keyed by modality ("s1", "s2"). The two backbones never
    share weights: the sensors see different physics.

    Args:
        s1: Encoder of the Sentinel-1 chips.
        s2: Encoder of the Sentinel-2 chips.
    """

    def __init__(self, s1: ModalityEncoder, s2: ModalityEncoder) -> None:
        super().__init__()
        self.s1 = s1
        self.s2 = s2

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in the order the fusion module expects them: ("s1", "s2")."""
        return tuple(MODALITY_KEYS)

    @property
    def num_features(self) -> dict[str, int]:
        """Embedding width D of each modality's backbone."""
        return {name: self[name].num_features for name in self.modalities}

    def __getitem__(self, modality: str) -> ModalityEncoder:
        """The encoder of one modality.

        Args:
            modality: "s1" or "s2".

        Returns:
            That modality's `ModalityEncoder`.

        Raises:
            KeyError: If the modality is unknown.
        """
        encoders = {"s1": self.s1, "s2": self.s2}
        if modality not in encoders:
            raise KeyError(f"unknown modality {modality!r}; expected one of {self.modalities}")
        return encoders[modality]

    def encode(self, batch: Mapping[str, Any]) -> dict[str, BackboneFeatures]:
        """Run each backbone once and return its pooled and dense views.

        Args:
            batch: Batch with "image_s1" (B, C1, H, W) and "image_s2" (B, C2, H, W).

        Returns:
            Per modality, `BackboneFeatures` with `pooled` (B, D_i), `dense`
            (B, D_i, h_i, w_i) and `tokens` (B, N_i, D_i).

        Raises:
            KeyError: If the batch lacks a modality's images.
            ValueError: If an image tensor has the wrong shape or band count.
        """
        return {name: self[name].encode(self._images(batch, name)) for name in self.modalities}

    def embed(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Pooled embedding of each modality.

        Args:
            batch: Batch with "image_s1" (B, C1, H, W) and "image_s2" (B, C2, H, W).

        Returns:
            {"s1": (B, D1), "s2": (B, D2)}.

        Raises:
            KeyError: If the batch lacks a modality's images.
            ValueError: If an image tensor has the wrong shape or band count.
        """
        return {name: self[name](self._images(batch, name)) for name in self.modalities}

    def tokens(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Token view of each modality's last feature map.

        Args:
            batch: Batch with "image_s1" (B, C1, H, W) and "image_s2" (B, C2, H, W).

        Returns:
            {"s1": (B, N1, D1), "s2": (B, N2, D2)}, tokens in row-major grid order.

        Raises:
            KeyError: If the batch lacks a modality's images.
            ValueError: If an image tensor has the wrong shape or band count.
        """
        return {name: self[name].tokens(self._images(batch, name)) for name in self.modalities}

    def dense(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Last feature map of each modality, channels first.

        Args:
            batch: Batch with "image_s1" (B, C1, H, W) and "image_s2" (B, C2, H, W).

        Returns:
            {"s1": (B, D1, h1, w1), "s2": (B, D2, h2, w2)}.

        Raises:
            KeyError: If the batch lacks a modality's images.
            ValueError: If an image tensor has the wrong shape or band count.
        """
        return {name: self[name].dense(self._images(batch, name)) for name in self.modalities}

    @staticmethod
    def _images(batch: Mapping[str, Any], modality: str) -> Tensor:
        """Fetch a modality's chips from a batch, naming the missing key if absent.

        Args:
            batch: Datamodule batch.
            modality: "s1" or "s2".

        Returns:
            The chips, (B, C, H, W).

        Raises:
            KeyError: If the batch has no images for the modality.
        """
        key = MODALITY_KEYS[modality]
        if key not in batch:
            raise KeyError(f"batch has no {key!r} (keys: {sorted(batch)})")
        images: Tensor = batch[key]
        return images


def build_paired_encoder(
    backbone: str | Mapping[str, str] = "resnet18",
    s1_channels: int = 2,
    s2_channels: int = 12,
    checkpoint_paths: Mapping[str, str | Path] | None = None,
    **timm_kwargs: Any,
) -> PairedEncoder:
    """Build the S1 and S2 backbones from timm names, randomly initialised or from local files.

    Args:
        backbone: A timm model name for both sensors, or {"s1": name, "s2": name}.
        s1_channels: Sentinel-1 bands (2 for VV, VH).
        s2_channels: Sentinel-2 bands (12 for L2A without B10).
        checkpoint_paths: Optional {"s1": path, "s2": path} (either key may be left out) of
            state dicts of exactly these backbones, as `ModalityEncoder`'s `checkpoint_path`.
        **timm_kwargs: Further `timm.create_model` arguments for both backbones
            (e.g. `output_stride=16`, or `img_size=64, dynamic_img_size=True` for ViTs).

    Returns:
        The `PairedEncoder`.

    Raises:
        ConfigError: If a name, band count, modality key or timm argument is invalid.
        FileNotFoundError: If a checkpoint does not exist.
    """
    modalities = tuple(MODALITY_KEYS)
    if isinstance(backbone, str):
        names = dict.fromkeys(modalities, backbone)
    else:
        names = dict(backbone)
        if set(names) != set(modalities):
            raise ConfigError(f"backbone needs exactly the keys {modalities}, got {sorted(names)}")
    paths = dict(checkpoint_paths or {})
    unknown = sorted(set(paths) - set(modalities))
    if unknown:
        raise ConfigError(f"checkpoint_paths has unknown modalities {unknown}; use {modalities}")
    channels = {"s1": s1_channels, "s2": s2_channels}
    encoders = {
        name: ModalityEncoder(
            names[name],
            in_chans=channels[name],
            checkpoint_path=paths.get(name),
            modality=name,
            **timm_kwargs,
        )
        for name in modalities
    }
    return PairedEncoder(s1=encoders["s1"], s2=encoders["s2"])
