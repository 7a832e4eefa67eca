"""Plain types: what a weights-only checkpoint can hold besides tensors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """The same value built from plain types only, as a weights-only checkpoint can hold.

    NumPy scalars and arrays become numbers and lists, paths become strings, tuples lists.

    Args:
        value: Metadata: nested mappings, sequences, numbers, strings, paths, NumPy values.

    Returns:
        The value from dicts (string keys), lists, str, int, float, bool and None.

    Raises:
        TypeError: If a value has a type that has no plain equivalent.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"checkpoint metadata holds a {type(value).__qualname__}, not a plain type")
