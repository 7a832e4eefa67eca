"""The random state a checkpoint carries: a resumed run draws what the uninterrupted one did.

Weights, optimiser and loop counters are not enough for a resumed run to reproduce an
uninterrupted one: every random draw after the checkpoint has to come out the same. The draws
come from the global generators: torch's (CPU, and CUDA where present) make the views, the
augmentations (kornia and ``torch.randn``/``randint`` on the device) and the data loader's
worker seeds; numpy's and Python's are captured too, for any code that uses them. (The chip
sampler's shuffle is seeded by its seed and the epoch, which Lightning restores, and the
datamodule keeps its seed in the checkpoint.) Everything is stored as tensors and plain types,
so that the checkpoint still loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

#: Key of the random state in a checkpoint.
RNG_KEY = "eo_mmcl_rng"


def capture_rng() -> dict[str, Any]:
    """The state of every global random generator, as tensors and plain types.

    Returns:
        ``{'torch', 'cuda', 'numpy', 'python'}``.
    """
    # The legacy global generator is the one to capture: it is what np.random.* calls draw from.
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(kind), np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [int(version), list(internal), gauss],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set every global random generator to a state :func:`capture_rng` returned.

    Args:
        state: The captured state.
    """
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    legacy = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    np.random.set_state(legacy)  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
