"""Encoders: timm backbones per sensor, projection heads and the multimodal fusion transformer."""

from __future__ import annotations

from eo_mmcl.models.backbone import BackboneFeatures, ModalityEncoder
from eo_mmcl.models.encoders import MODALITY_KEYS, PairedEncoder, build_paired_encoder
from eo_mmcl.models.fusion import FusionTransformer
from eo_mmcl.models.heads import ProjectionHead

__all__ = [
    "MODALITY_KEYS",
    "BackboneFeatures",
    "FusionTransformer",
    "ModalityEncoder",
    "PairedEncoder",
    "ProjectionHead",
    "build_paired_encoder",
]
