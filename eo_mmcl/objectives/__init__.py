"""Training objectives: LightningModules, one per objective, on a common base.

The pattern is torchgeo's ``BaseTask`` (its trainers); here the word "task" is kept for label
tasks, so the modules are objectives.
"""

from typing import TYPE_CHECKING

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.objectives.base import Objective
from eo_mmcl.objectives.clip import CLIPObjective
from eo_mmcl.objectives.comm import CoMMObjective
from eo_mmcl.objectives.coral import CoRALObjective
from eo_mmcl.objectives.cross_self import CrossSelfObjective
from eo_mmcl.objectives.decur import DeCURObjective
from eo_mmcl.objectives.labels import majority_labels
from eo_mmcl.objectives.simclr import SimCLRObjective
from eo_mmcl.objectives.supervised import SupervisedObjective
from eo_mmcl.objectives.views import PairedViews

#: Objective name -> its class (the names of the configs in pipelines/configs/).
OBJECTIVES: dict[str, type[Objective]] = {
    objective.objective: objective
    for objective in (
        CLIPObjective, SimCLRObjective, CrossSelfObjective, DeCURObjective, CoMMObjective,
        CoRALObjective, SupervisedObjective,
    )
}  # fmt: skip

__all__ = [
    "OBJECTIVES",
    "CLIPObjective",
    "CoMMObjective",
    "CoRALObjective",
    "CrossSelfObjective",
    "DeCURObjective",
    "Objective",
    "PairedViews",
    "SimCLRObjective",
    "SupervisedObjective",
    "majority_labels",
]

if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
