"""The return type shared by every loss that combines several named terms."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class LossOutput(NamedTuple):
    """Total of a multi-term loss together with its components.

    Every multi-term loss in `eo_mmcl.losses` returns this, so a training loop can back-propagate
    `total` and log `terms` without knowing which objective it runs. `terms` holds each
    component *before* its weight is applied, so logged values stay comparable when weights
    change; each loss documents how `total` combines them. Being a tuple, it unpacks as
    `total, terms = loss_fn(...)`.

    Args:
        total: Scalar loss to back-propagate.
        terms: Unweighted scalar components keyed by name.
    """

    total: Tensor
    terms: dict[str, Tensor]
