"""The batch pipeline: one config file, resumable stages, manifests (``eo-mmcl run``)."""

from eo_mmcl.pipeline.config import STAGES, PipelineConfig, load_pipeline_config
from eo_mmcl.pipeline.manifest import MANIFEST, StageManifest
from eo_mmcl.pipeline.runner import StageOutcome, run_pipeline

__all__ = [
    "MANIFEST",
    "STAGES",
    "PipelineConfig",
    "StageManifest",
    "StageOutcome",
    "load_pipeline_config",
    "run_pipeline",
]
