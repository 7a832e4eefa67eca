"""A small transformer that fuses the token sequences of several modalities into one embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from timm.layers import build_sincos2d_pos_embed
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError


class FusionTransformer(nn.Module):
    """Fuse per-modality tokens through self-attention and read out a learnable CLS token.

    The fusion module of CoMM (Dufumier et al., ICLR 2025) and of COrAL's shared path
    (Cissee et al., 2026). Each modality i's tokens (B, N_i, D_i) are projected to `dim` by
    their own linear layer, then two codes are added:

    - a learnable modality embedding (one vector per modality), so attention can tell a SAR
      token from an optical one;
    - a fixed 2-D sine-cosine position of the token on its grid (timm's
      `build_sincos2d_pos_embed`, as in MAE), in integer token-grid units. It has no
      parameters, so any chip size and token count works without interpolation, and
      co-registered modalities encoded at the same stride give the same code to tokens over
      the same ground, which is what lets attention pair them. Positions are added *before*
      masking, so the surviving tokens keep where they were.

    A learnable CLS token is prepended and the sequence runs through `depth` pre-norm
    `torch.nn.TransformerEncoderLayer`s and a final LayerNorm; the output is the CLS token.

    Masking semantics (True = masked): a masked token is removed from attention through
    `src_key_padding_mask`, so it influences nothing; its values are also zeroed so that
    non-finite inputs (e.g. from nodata) cannot leak through a zero attention weight. A
    modality given as None, or whose mask is True everywhere in the batch, is absent: it is
    left out of the sequence, so the result equals calling without it (how CoMM computes
    single-modality fused embeddings). A modality fully masked for only some samples is
    absent for those samples up to float rounding. COrAL's views mask 75% of one modality's
    tokens. The CLS token is never masked, so every sample attends to at least one token and
    the output is finite even with every modality masked.

    Dropout is off by default; with `dropout > 0` outputs in training mode are random but
    reproducible under `torch.manual_seed`.

    Args:
        in_dims: Token width D_i of each modality, in the order tokens are passed.
        dim: Width of the fused sequence and of the output embedding; divisible by `heads`
            and by 4 (the 2-D sine-cosine code splits it into four parts).
        depth: Number of transformer layers.
        heads: Attention heads per layer.
        mlp_ratio: Width of each layer's MLP relative to `dim`.
        dropout: Dropout inside the transformer layers.

    Raises:
        ConfigError: If `in_dims` is empty or holds a width < 1, or `dim`, `depth`, `heads`,
            `mlp_ratio` or `dropout` is invalid.
    """

    def __init__(
        self,
        in_dims: Sequence[int],
        dim: int = 256,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not in_dims or any(d < 1 for d in in_dims):
            raise ConfigError(f"FusionTransformer: in_dims must be widths >= 1, got {in_dims}")
        if depth < 1 or heads < 1:
            raise ConfigError(
                f"FusionTransformer: depth and heads must be >= 1, got {depth}, {heads}"
            )
        if dim < 4 or dim % heads or dim % 4:
            raise ConfigError(
                f"FusionTransformer: dim must be divisible by heads ({heads}) and by 4, got {dim}"
            )
        if not (math.isfinite(mlp_ratio) and mlp_ratio > 0):
            raise ConfigError(f"FusionTransformer: mlp_ratio must be > 0, got {mlp_ratio}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"FusionTransformer: dropout must lie in [0, 1), got {dropout}")
        self.in_dims = tuple(int(d) for d in in_dims)
        self.dim = dim
        self.projections = nn.ModuleList(nn.Linear(d, dim) for d in self.in_dims)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # (1, 1, dim)
        self.modality_embed = nn.Parameter(torch.zeros(len(self.in_dims), dim))  # (M, dim)
        # Small random starts as in ViT/MAE: zeros would make every modality look alike.
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=round(dim * mlp_ratio),
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Pre-norm layers leave the residual stream unnormalised, hence the final LayerNorm.
        # Nested tensors do not support norm_first and would only warn.
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )

    @property
    def num_modalities(self) -> int:
        """Number of modalities M the module was built for."""
        return len(self.in_dims)

    def forward(
        self,
        tokens: Sequence[Tensor | None],
        masks: Sequence[Tensor | None] | None = None,
        grid_sizes: Sequence[tuple[int, int] | None] | None = None,
    ) -> Tensor:
        """Fuse the modalities' tokens into one embedding per sample.

        Args:
            tokens: One entry per modality: tokens of shape (B, N_i, D_i) in row-major grid
                order, or None for an absent modality. At least one must be given.
            masks: Optional, one entry per modality: boolean (B, N_i), True = masked, or None
                for no masking.
            grid_sizes: Optional, one entry per modality: the token grid (h_i, w_i) with
                h_i * w_i = N_i; None (the default) assumes a square grid.

        Returns:
            The CLS embedding, shape (B, dim).

        Raises:
            ValueError: If the number of entries does not match the modalities, no modality is
                given, shapes disagree, or a non-square token count comes without its grid.
        """
        n_mod = self.num_modalities
        masks = [None] * n_mod if masks is None else list(masks)
        grid_sizes = [None] * n_mod if grid_sizes is None else list(grid_sizes)
        if not len(tokens) == len(masks) == len(grid_sizes) == n_mod:
            raise ValueError(
                f"FusionTransformer expects {n_mod} entries of tokens/masks/grid_sizes, got "
                f"{len(tokens)}/{len(masks)}/{len(grid_sizes)}"
            )
        present = [t for t in tokens if t is not None]
        if not present:
            raise ValueError("FusionTransformer needs the tokens of at least one modality")
        batch = int(present[0].shape[0])
        parts: list[Tensor] = []  # each (B, N_i, dim)
        padding: list[Tensor] = []  # each (B, N_i) bool
        any_masked = False
        for i, (x, mask, grid) in enumerate(zip(tokens, masks, grid_sizes, strict=True)):
            if x is None:
                continue
            self._check_tokens(i, x, mask, batch)
            if mask is not None and bool(mask.all()):
                continue  # wholly masked: absent, exactly as if given as None
            n_tokens = int(x.shape[1])
            height, width = grid if grid is not None else _square_grid(i, n_tokens)
            if height * width != n_tokens:
                raise ValueError(
                    f"modality {i}: grid {(height, width)} does not hold {n_tokens} tokens"
                )
            h = self.projections[i](x)  # (B, N_i, dim)
            pos = build_sincos2d_pos_embed(
                [height, width], dim=self.dim, device=h.device, dtype=h.dtype
            )  # (N_i, dim)
            h = h + self.modality_embed[i].to(h.dtype) + pos  # (B, N_i, dim)
            if mask is None:
                mask = torch.zeros(batch, n_tokens, dtype=torch.bool, device=h.device)
            else:
                h = h.masked_fill(mask.unsqueeze(-1), 0.0)
                any_masked = True
            parts.append(h)
            padding.append(mask)
        dtype = parts[0].dtype if parts else self.cls_token.dtype
        device = present[0].device
        cls = self.cls_token.to(dtype).expand(batch, -1, -1)  # (B, 1, dim)
        sequence = torch.cat([cls, *parts], dim=1)  # (B, 1 + sum N_i, dim)
        cls_pad = torch.zeros(batch, 1, dtype=torch.bool, device=device)  # CLS is never masked
        key_padding = torch.cat([cls_pad, *padding], dim=1)  # (B, 1 + sum N_i)
        # Without a mask, pass none: the same result, and faster attention kernels.
        fused = self.encoder(
            sequence, src_key_padding_mask=key_padding if any_masked else None
        )  # (B, 1 + sum N_i, dim)
        return fused[:, 0]  # (B, dim)

    def _check_tokens(self, index: int, x: Tensor, mask: Tensor | None, batch: int) -> None:
        """Check one modality's tokens and mask against the module and the batch.

        Args:
            index: Modality index.
            x: Tokens of that modality.
            mask: Its mask, or None.
            batch: Batch size of the first modality given.

        Raises:
            ValueError: If shapes or the mask dtype are wrong.
        """
        if x.ndim != 3 or x.shape[0] != batch or x.shape[2] != self.in_dims[index]:
            raise ValueError(
                f"modality {index}: expected tokens (B={batch}, N, {self.in_dims[index]}), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] < 1:
            raise ValueError(f"modality {index}: got no tokens; pass None for an absent modality")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != x.shape[:2]):
            raise ValueError(
                f"modality {index}: expected a bool mask of shape {tuple(x.shape[:2])}, got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )


def _square_grid(index: int, n_tokens: int) -> tuple[int, int]:
    """Grid of a token count assumed square.

    Args:
        index: Modality index, for the message.
        n_tokens: Number of tokens N.

    Returns:
        (s, s) with s * s == N.

    Raises:
        ValueError: If N is not a perfect square.
    """
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ValueError(
            f"modality {index}: {n_tokens} tokens are not a square grid; pass grid_sizes"
        )
    return side, side
