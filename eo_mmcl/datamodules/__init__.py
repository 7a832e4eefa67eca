"""Paired S1/S2 datasets and the Lightning datamodule that feeds the encoders."""

from eo_mmcl.datamodules.chipstore import ChipStoreDataset, ChunkShuffleSampler
from eo_mmcl.datamodules.datamodule import PairedS1S2DataModule
from eo_mmcl.datamodules.embedding_rasters import EmbeddingRasterDataset
from eo_mmcl.datamodules.transforms import PairedS1S2Transform

__all__ = [
    "ChipStoreDataset",
    "ChunkShuffleSampler",
    "EmbeddingRasterDataset",
    "PairedS1S2DataModule",
    "PairedS1S2Transform",
]
