"""Lightning tasks, one per training objective, on a common base (torchgeo's BaseTask pattern)."""

from eo_mmcl.tasks.base import ObjectiveTask
from eo_mmcl.tasks.clip import CLIPTask
from eo_mmcl.tasks.comm import CoMMTask
from eo_mmcl.tasks.coral import CoRALTask
from eo_mmcl.tasks.cross_self import CrossSelfTask
from eo_mmcl.tasks.decur import DeCURTask
from eo_mmcl.tasks.labels import majority_labels
from eo_mmcl.tasks.simclr import SimCLRTask
from eo_mmcl.tasks.supervised import SupervisedTask
from eo_mmcl.tasks.views import PairedViews

#: Objective name -> task class (the names of the configs in pipelines/configs/).
OBJECTIVES: dict[str, type[ObjectiveTask]] = {
    task.objective: task
    for task in (
        CLIPTask, SimCLRTask, CrossSelfTask, DeCURTask, CoMMTask, CoRALTask, SupervisedTask,
    )
}  # fmt: skip

__all__ = [
    "OBJECTIVES",
    "CLIPTask",
    "CoMMTask",
    "CoRALTask",
    "CrossSelfTask",
    "DeCURTask",
    "ObjectiveTask",
    "PairedViews",
    "SimCLRTask",
    "SupervisedTask",
    "majority_labels",
]
