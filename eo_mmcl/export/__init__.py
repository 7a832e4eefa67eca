"""Embedding export: sliding-window COGs, STAC, chip GeoParquet and PCA previews, on Dask."""

from eo_mmcl.export.cog import Quantisation, write_embedding_cog
from eo_mmcl.export.model import EmbeddingModel
from eo_mmcl.export.preview import pca_preview
from eo_mmcl.export.run import EmbedConfig, ExportResult, export_embeddings
from eo_mmcl.export.windows import WindowGrid, blend, tent_weights

__all__ = [
    "EmbedConfig",
    "EmbeddingModel",
    "ExportResult",
    "Quantisation",
    "WindowGrid",
    "blend",
    "export_embeddings",
    "pca_preview",
    "tent_weights",
    "write_embedding_cog",
]
