"""Package attributes that load their submodule on first use (PEP 562).

A package whose ``__init__`` imported every submodule would make its lightest part (a config
class the command line reads) cost as much as its heaviest (torch, Zarr, Dask).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that imports each public name from its submodule.

    Args:
        package: The package's ``__name__``.
        homes: Public name -> submodule (relative to the package) that defines it.

    Returns:
        The function to assign to the package's ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__
