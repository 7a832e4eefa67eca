"""Old package names of eo_mmcl, kept importable after the packages were named for their stages.

``eo_mmcl.tiling`` is now ``eo_mmcl.tile``, ``eo_mmcl.export`` is ``eo_mmcl.embed``,
``eo_mmcl.probes`` is ``eo_mmcl.probe`` and ``eo_mmcl.tasks`` is ``eo_mmcl.objectives``. Users'
scripts, the ``class_path`` of their LightningCLI configs and the ``_class_path`` that Lightning
stores in every checkpoint's hyperparameters (and imports again when the checkpoint is loaded)
still name the old modules. A finder at the front of :data:`sys.meta_path` answers an old name
with the module of the new one, the very same object, so classes keep one identity
(``isinstance``, LightningCLI's subclass checks, Lightning's ``load_from_checkpoint``) and no
module is loaded twice. Each old package prints a one-line deprecation the first time it is used.

A finder rather than stub packages: stubs would put the old names back into ``eo_mmcl/``, whose
listing is meant to read as the pipeline's flow.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

#: Old package -> the package that replaced it.
RENAMED_PACKAGES: dict[str, str] = {
    "eo_mmcl.tiling": "eo_mmcl.tile",
    "eo_mmcl.export": "eo_mmcl.embed",
    "eo_mmcl.probes": "eo_mmcl.probe",
    "eo_mmcl.tasks": "eo_mmcl.objectives",
}

#: Modules renamed inside a renamed package (the old module under its new package -> new module).
RENAMED_MODULES: dict[str, str] = {
    "eo_mmcl.tile.tile": "eo_mmcl.tile.run",
}


def current_name(name: str) -> str | None:
    """The module that an old module name now refers to.

    Args:
        name: A dotted module name.

    Returns:
        The new name, or ``None`` if ``name`` is not under a renamed package.
    """
    if name in RENAMED_MODULES:  # ``from eo_mmcl.tiling import tile`` asks for eo_mmcl.tile.tile
        return RENAMED_MODULES[name]
    for old, new in RENAMED_PACKAGES.items():
        if name == old or name.startswith(old + "."):
            renamed = new + name[len(old) :]
            return RENAMED_MODULES.get(renamed, renamed)
    return None


#: Old class or function name -> new name, per module that defines it (names kept importable).
RENAMED_ATTRIBUTES: dict[str, dict[str, str]] = {
    "eo_mmcl.objectives": {
        "ObjectiveTask": "Objective",
        "CLIPTask": "CLIPObjective",
        "SimCLRTask": "SimCLRObjective",
        "CrossSelfTask": "CrossSelfObjective",
        "DeCURTask": "DeCURObjective",
        "CoMMTask": "CoMMObjective",
        "CoRALTask": "CoRALObjective",
        "SupervisedTask": "SupervisedObjective",
    },
    "eo_mmcl.objectives.base": {"ObjectiveTask": "Objective"},
    "eo_mmcl.objectives.clip": {"CLIPTask": "CLIPObjective"},
    "eo_mmcl.objectives.simclr": {"SimCLRTask": "SimCLRObjective"},
    "eo_mmcl.objectives.cross_self": {"CrossSelfTask": "CrossSelfObjective"},
    "eo_mmcl.objectives.decur": {"DeCURTask": "DeCURObjective"},
    "eo_mmcl.objectives.comm": {"CoMMTask": "CoMMObjective"},
    "eo_mmcl.objectives.coral": {"CoRALTask": "CoRALObjective"},
    "eo_mmcl.objectives.supervised": {"SupervisedTask": "SupervisedObjective"},
    "eo_mmcl.objectives.fused": {"FusedTask": "FusedObjective"},
    "eo_mmcl.objectives.checkpoint": {"load_task": "load_trained"},
}


def renamed_attributes(module: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) that answers the module's old names.

    Each old name returns the object of its new name, with a one-line deprecation. Modules
    assign it under ``if not TYPE_CHECKING:`` so that mypy keeps checking their attributes.

    Args:
        module: The module's ``__name__`` (a key of :data:`RENAMED_ATTRIBUTES`).

    Returns:
        The function to assign to the module's ``__getattr__``.
    """
    renamed: Mapping[str, str] = RENAMED_ATTRIBUTES[module]

    def __getattr__(name: str) -> Any:
        new = renamed.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is now {module}.{new}; the old name is deprecated and will be "
            "removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sys.modules[module], new)

    return __getattr__


def importable_class_path(class_path: str) -> None:
    """Import the module of a class path that names a renamed package, under its old name.

    Lightning loads a checkpoint's class (the ``_class_path`` LightningCLI stored) only if its
    module is already in :data:`sys.modules`, so that loading never imports code; a checkpoint
    trained before the renames names ``eo_mmcl.tasks...``, which nothing imports any more.

    Args:
        class_path: A dotted ``module.Class`` path; other paths are left alone.
    """
    module = class_path.rpartition(".")[0]
    if current_name(module) is not None:
        importlib.import_module(module)


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the already-imported module of its new name."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._module: ModuleType | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self._module = importlib.import_module(self.target)
        self._spec = self._module.__spec__
        return self._module

    def exec_module(self, module: ModuleType) -> None:
        # importlib set the old name's spec on the module it got from create_module; the module
        # is the new one and keeps its own spec (reloads and tracebacks name the real file).
        module.__spec__ = self._spec


class RenamedPackageFinder(importlib.abc.MetaPathFinder):
    """Maps ``eo_mmcl``'s old package names onto the new ones (see the module docstring)."""

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of an old name (loaded as its new module), or ``None`` for any other name.

        Args:
            fullname: The module being imported.
            path: The parent package's search path (unused: the new module finds its own).
            target: The module being reloaded, if any (unused).

        Returns:
            A spec whose loader returns the new module, or ``None``.
        """
        new = current_name(fullname)
        if new is None:
            return None
        old_package = next(
            (p for p in RENAMED_PACKAGES if fullname.split(".")[:2] == p.split(".")), fullname
        )
        if old_package not in self.warned:
            self.warned.add(old_package)
            warnings.warn(
                f"{old_package} is now {RENAMED_PACKAGES.get(old_package, new)}; the old name is "
                "deprecated and will be removed",
                DeprecationWarning,
                stacklevel=2,
            )
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder first on :data:`sys.meta_path` (once per interpreter).

    First, because the path finder would otherwise find ``store.py`` in the new package's folder
    under the old name and load a second copy of it.
    """
    if not any(isinstance(finder, RenamedPackageFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, RenamedPackageFinder())
