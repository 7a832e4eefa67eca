"""The MLP projection head that maps backbone embeddings into a contrastive loss's space."""

from __future__ import annotations

from lightly.models.modules.heads import ProjectionHead as LightlyProjectionHead
from lightly.models.modules.heads import SimCLRProjectionHead
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError


class ProjectionHead(nn.Module):
    """SimCLR-style MLP projector (Chen et al., 2020), built on lightly's heads.

    With `num_layers >= 2` this is `lightly.models.modules.heads.SimCLRProjectionHead`:
    `num_layers - 1` blocks of Linear -> BatchNorm1d -> ReLU, then a Linear (-> BatchNorm1d)
    output layer, so 2 layers is SimCLR v1 and 3 is SimCLR v2 / Barlow Twins depth. Lightly's
    SimCLR head silently builds two layers when asked for one, so `num_layers=1` is built here
    from lightly's generic `ProjectionHead` as a single Linear (-> BatchNorm1d) layer.

    With `batch_norm=True` the head needs batches of at least 2 samples in training mode.

    Args:
        in_dim: Input width (the backbone's `num_features`).
        hidden_dim: Width of the hidden layers.
        out_dim: Width of the projected embedding fed to the loss.
        num_layers: Number of linear layers, >= 1.
        batch_norm: Whether each linear layer is followed by BatchNorm1d.

    Raises:
        ConfigError: If a width or `num_layers` is < 1.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_dim", in_dim),
            ("hidden_dim", hidden_dim),
            ("out_dim", out_dim),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise ConfigError(f"ProjectionHead: {name} must be >= 1, got {value}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.mlp: nn.Module
        if num_layers == 1:
            self.mlp = LightlyProjectionHead(
                [(in_dim, out_dim, nn.BatchNorm1d(out_dim) if batch_norm else None, None)]
            )
        else:
            self.mlp = SimCLRProjectionHead(
                input_dim=in_dim,
                hidden_dim=hidden_dim,
                output_dim=out_dim,
                num_layers=num_layers,
                batch_norm=batch_norm,
            )

    def forward(self, x: Tensor) -> Tensor:
        """Project embeddings.

        Args:
            x: Embeddings of shape (B, in_dim).

        Returns:
            Projections of shape (B, out_dim).

        Raises:
            ValueError: If `x` is not (B, in_dim).
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"ProjectionHead expects (B, {self.in_dim}) embeddings, got {tuple(x.shape)}"
            )
        projected: Tensor = self.mlp(x)  # (B, out_dim)
        return projected
