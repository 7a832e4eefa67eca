"""Embedding export: sliding-window COGs, STAC, chip GeoParquet and PCA previews, on Dask.

The names below load on first use (PEP 562), so that ``eo_mmcl.embed.config`` (what the
command line and the pipeline file read) comes without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eo_mmcl.lazy import lazy_attributes

if TYPE_CHECKING:
    from eo_mmcl.embed.cog import Quantisation, write_embedding_cog
    from eo_mmcl.embed.config import EmbedConfig
    from eo_mmcl.embed.model import EmbeddingModel
    from eo_mmcl.embed.preview import pca_preview
    from eo_mmcl.embed.run import ExportResult, export_embeddings
    from eo_mmcl.embed.windows import WindowGrid, blend, tent_weights

#: Where each public name lives.
_HOMES = {
    "EmbedConfig": "config",
    "EmbeddingModel": "model",
    "ExportResult": "run",
    "Quantisation": "cog",
    "WindowGrid": "windows",
    "blend": "windows",
    "export_embeddings": "run",
    "pca_preview": "preview",
    "tent_weights": "windows",
    "write_embedding_cog": "cog",
}

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

__getattr__ = lazy_attributes(__name__, _HOMES)
