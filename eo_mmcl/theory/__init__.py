"""The theory lab: latent-variable experiments on vectors with the project's own losses.

Two results frame what the raster pipeline measures, and the lab reproduces both in seconds:

- Linear-Gaussian (Thoreau, Levillain and Derksen, 2025): aligning two modalities with linear
  encoders keeps CCA's aligned subspace and discards what only one modality carries when the
  embedding has no room beyond it (:func:`run_linear_sweep`).
- Misalignment (Cai et al., 2025): contrastive alignment identifies the semantic factors that
  are neither missing from one modality nor perturbed between them
  (:func:`run_misalignment_sweep`).

:func:`run_linear_lab` and :func:`run_misalignment_lab` also write ``results.csv``, figures and a
Markdown ``section.md`` (the ``eo-mmcl theory`` commands call them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eo_mmcl.lazy import lazy_attributes

if TYPE_CHECKING:
    from eo_mmcl.theory.cca import CCAResult, fit_cca, principal_angles_deg
    from eo_mmcl.theory.data import (
        LatentDataset,
        LinearGaussianConfig,
        PairedSplit,
        sample_linear_gaussian,
    )
    from eo_mmcl.theory.lab import LabOutput, run_linear_lab, run_misalignment_lab
    from eo_mmcl.theory.linear import LinearResults, LinearSweep, run_linear_sweep
    from eo_mmcl.theory.misaligned_data import (
        MisalignmentConfig,
        sample_misaligned,
        sample_misaligned_latents,
    )
    from eo_mmcl.theory.misalignment import MisalignmentSweep, run_misalignment_sweep
    from eo_mmcl.theory.objectives import OBJECTIVES, VectorObjective, build_objective
    from eo_mmcl.theory.probes import kernel_probe_r2, linear_probe_r2
    from eo_mmcl.theory.summary import group_r2
    from eo_mmcl.theory.training import TrainConfig, train_objective
    from eo_mmcl.theory.views import ViewConfig

# Loaded on first use (PEP 562): the lab imports torch, and the command line imports this
# package for its `eo-mmcl theory` commands, so `eo-mmcl --help` would pay for torch otherwise.
_LAZY = {
    "CCAResult": "cca",
    "LabOutput": "lab",
    "LatentDataset": "data",
    "LinearGaussianConfig": "data",
    "LinearResults": "linear",
    "LinearSweep": "linear",
    "MisalignmentConfig": "misaligned_data",
    "MisalignmentSweep": "misalignment",
    "OBJECTIVES": "objectives",
    "PairedSplit": "data",
    "TrainConfig": "training",
    "VectorObjective": "objectives",
    "ViewConfig": "views",
    "build_objective": "objectives",
    "fit_cca": "cca",
    "group_r2": "summary",
    "kernel_probe_r2": "probes",
    "linear_probe_r2": "probes",
    "principal_angles_deg": "cca",
    "run_linear_lab": "lab",
    "run_linear_sweep": "linear",
    "run_misalignment_lab": "lab",
    "run_misalignment_sweep": "misalignment",
    "sample_linear_gaussian": "data",
    "sample_misaligned": "misaligned_data",
    "sample_misaligned_latents": "misaligned_data",
    "train_objective": "training",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "OBJECTIVES",
    "CCAResult",
    "LabOutput",
    "LatentDataset",
    "LinearGaussianConfig",
    "LinearResults",
    "LinearSweep",
    "MisalignmentConfig",
    "MisalignmentSweep",
    "PairedSplit",
    "TrainConfig",
    "VectorObjective",
    "ViewConfig",
    "build_objective",
    "fit_cca",
    "group_r2",
    "kernel_probe_r2",
    "linear_probe_r2",
    "principal_angles_deg",
    "run_linear_lab",
    "run_linear_sweep",
    "run_misalignment_lab",
    "run_misalignment_sweep",
    "sample_linear_gaussian",
    "sample_misaligned",
    "sample_misaligned_latents",
    "train_objective",
]
