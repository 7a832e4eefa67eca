"""One timm backbone per sensor: pooled, token and dense views of its last feature map."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import timm
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError

#: Arguments that `ModalityEncoder` sets itself; passing them through `timm_kwargs` would
#: silently fight with (or, for `pretrained`, bypass) its own choices.
_RESERVED_TIMM_KWARGS: frozenset[str] = frozenset(
    {"model_name", "pretrained", "in_chans", "num_classes", "checkpoint_path", "features_only"}
)
#: Model-name prefixes that make timm fetch a config or weights over the network.
_REMOTE_PREFIXES: tuple[str, ...] = ("hf-hub:", "hf_hub:")


class BackboneFeatures(NamedTuple):
    """What one backbone pass yields, so that callers needing both views run the network once.

    Args:
        pooled: Pooled embedding, shape (B, D): timm's `forward_head(pre_logits=True)`.
        dense: Last feature map, shape (B, D, h, w), channels first whatever the model's own
            layout; for ViTs the patch tokens laid back on their grid (prefix tokens dropped).
    """

    pooled: Tensor
    dense: Tensor

    @property
    def tokens(self) -> Tensor:
        """The dense map as a token sequence, shape (B, h * w, D), in row-major grid order."""
        return self.dense.flatten(2).transpose(1, 2)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (h, w) of the dense map."""
        return int(self.dense.shape[-2]), int(self.dense.shape[-1])


class ModalityEncoder(nn.Module):
    """A timm backbone for one sensor, with `in_chans` set to that sensor's band count.

    The backbone is built with `timm.create_model(name, in_chans=in_chans, num_classes=0,
    pretrained=False, **timm_kwargs)`: no classifier, never a download. Three views of the
    last feature map are offered:

    - `forward(x)`: the pooled embedding (B, D), exactly what timm's own head pools;
    - `tokens(x)`: the last feature map as tokens (B, N, D), N = h * w; for ViT-like models the
      patch tokens only (the `num_prefix_tokens` class/register tokens are dropped);
    - `dense(x)`: the same map as (B, D, h, w), for segmentation probes and dense export.

    Token counts follow the backbone's total stride (`reduction`). A resnet18 reduces by 32,
    so a chip of 32 px gives 1x1 = 1 token, 64 px gives 2x2 = 4, 96 px 3x3 = 9 and 128 px
    4x4 = 16. Token-level objectives (CoMM, COrAL masking) need more tokens on small chips:
    pass `output_stride=16` (32 px -> 2x2, 64 px -> 4x4, 128 px -> 8x8) or `output_stride=8`
    (32 px -> 4x4, 64 px -> 8x8, 128 px -> 16x16) for timm models that support it (ResNets,
    EfficientNets), which dilates the last stages instead of striding. ViTs give
    (H / patch) x (W / patch) tokens; build them with `img_size=<chip px>` and, for varying
    chip sizes, `dynamic_img_size=True`.

    Weights come from one of two local files, never from the network:

    - `checkpoint_path`: a state dict of exactly this backbone (for example
      `encoder.backbone.state_dict()` saved with `torch.save`, or a `.safetensors` file),
      loaded strictly by timm's `load_checkpoint` (`state_dict`/`model` wrappers and a
      `module.` prefix are accepted);
    - `pretrained_file`: a timm-format pretrained checkpoint of the same architecture
      (for example ImageNet weights copied to disk), loaded by timm's `load_pretrained`,
      which drops its classifier and adapts its first convolution to `in_chans`.

    Args:
        name: Any timm model name (`timm.list_models()`); resnet18 by default.
        in_chans: Number of input bands, e.g. 2 for Sentinel-1 VV/VH, 12 for Sentinel-2 L2A.
        checkpoint_path: Local state dict of this exact backbone, loaded strictly.
        pretrained_file: Local timm pretrained checkpoint, adapted to `in_chans`.
        modality: Name used in error messages (e.g. "s1").
        **timm_kwargs: Further `timm.create_model` arguments (`output_stride`, `img_size`,
            `dynamic_img_size`, `drop_path_rate`, ...).

    Raises:
        ConfigError: If the name is unknown to timm or remote, `in_chans` < 1, both weight
            files are given, a reserved argument is passed in `timm_kwargs`, or timm rejects
            the arguments.
        FileNotFoundError: If a weight file does not exist.
    """

    def __init__(
        self,
        name: str = "resnet18",
        in_chans: int = 3,
        checkpoint_path: str | Path | None = None,
        pretrained_file: str | Path | None = None,
        modality: str = "input",
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        _check_model_name(name)
        if in_chans < 1:
            raise ConfigError(f"{modality}: in_chans must be >= 1, got {in_chans}")
        reserved = sorted(_RESERVED_TIMM_KWARGS & timm_kwargs.keys())
        if reserved:
            raise ConfigError(
                f"{modality}: {reserved} are set by ModalityEncoder; use in_chans, "
                "checkpoint_path or pretrained_file instead"
            )
        if checkpoint_path is not None and pretrained_file is not None:
            raise ConfigError(f"{modality}: give checkpoint_path or pretrained_file, not both")
        weights = checkpoint_path if checkpoint_path is not None else pretrained_file
        if weights is not None and not Path(weights).is_file():
            # timm raises a bare FileNotFoundError() without the path.
            raise FileNotFoundError(f"{modality}: weight file not found: {weights}")

        create_kwargs: dict[str, Any] = dict(timm_kwargs)
        if pretrained_file is not None:
            # pretrained=True is safe only because the `file` overlay outranks every remote
            # source in timm's resolution order and the name was checked not to be a hub id.
            create_kwargs.update(
                pretrained=True, pretrained_cfg_overlay={"file": str(pretrained_file)}
            )
        else:
            create_kwargs["pretrained"] = False
        if checkpoint_path is not None:
            create_kwargs["checkpoint_path"] = str(checkpoint_path)
        try:
            # timm models share forward_features/forward_head/num_features by convention, not
            # through a typed base class, so the attribute is typed Any for mypy.
            self.backbone: Any = timm.create_model(
                name, in_chans=in_chans, num_classes=0, **create_kwargs
            )
        except TypeError as err:
            # timm forwards unknown kwargs to the model class, which fails with a TypeError.
            raise ConfigError(f"{modality}: timm cannot build {name!r}: {err}") from err
        self.name = name
        self.in_chans = in_chans
        self.modality = modality

    @property
    def num_features(self) -> int:
        """Embedding width D of the pooled, token and dense outputs."""
        return int(self.backbone.num_features)

    @property
    def num_prefix_tokens(self) -> int:
        """Class/register tokens that a ViT-like backbone puts before its patch tokens."""
        return int(getattr(self.backbone, "num_prefix_tokens", 0))

    @property
    def reduction(self) -> int | None:
        """Total stride of the last feature map in input pixels (None where timm does not say)."""
        feature_info = getattr(self.backbone, "feature_info", None)
        if not feature_info:
            return None
        reduction = feature_info[-1].get("reduction")
        return int(reduction) if reduction is not None else None

    def encode(self, x: Tensor) -> BackboneFeatures:
        """Run the backbone once and return its pooled and dense views.

        Args:
            x: Normalised chips, shape (B, in_chans, H, W).

        Returns:
            `BackboneFeatures` with `pooled` (B, D) and `dense` (B, D, h, w).

        Raises:
            ValueError: If `x` is not (B, in_chans, H, W), or a token sequence cannot be laid
                on a grid.
        """
        self._check_input(x)
        features = self.backbone.forward_features(x)  # model layout: NCHW, NHWC or (B, T, D)
        pooled = self.backbone.forward_head(features, pre_logits=True)  # (B, D)
        dense = self._to_dense(features, (int(x.shape[-2]), int(x.shape[-1])))  # (B, D, h, w)
        return BackboneFeatures(pooled=pooled, dense=dense)

    def forward(self, x: Tensor) -> Tensor:
        """Pooled embedding of each chip.

        Args:
            x: Normalised chips, shape (B, in_chans, H, W).

        Returns:
            Embeddings of shape (B, D).

        Raises:
            ValueError: If `x` is not (B, in_chans, H, W).
        """
        self._check_input(x)
        pooled: Tensor = self.backbone.forward_head(
            self.backbone.forward_features(x), pre_logits=True
        )  # (B, D)
        return pooled

    def tokens(self, x: Tensor) -> Tensor:
        """Token view of the last feature map.

        Args:
            x: Normalised chips, shape (B, in_chans, H, W).

        Returns:
            Tokens of shape (B, N, D), N = h * w in row-major grid order, prefix tokens dropped.

        Raises:
            ValueError: If `x` is not (B, in_chans, H, W), or a token sequence cannot be laid
                on a grid.
        """
        return self.dense(x).flatten(2).transpose(1, 2)  # (B, h * w, D)

    def dense(self, x: Tensor) -> Tensor:
        """Last feature map, channels first.

        Args:
            x: Normalised chips, shape (B, in_chans, H, W).

        Returns:
            Feature map of shape (B, D, h, w).

        Raises:
            ValueError: If `x` is not (B, in_chans, H, W), or a token sequence cannot be laid
                on a grid.
        """
        self._check_input(x)
        features = self.backbone.forward_features(x)
        return self._to_dense(features, (int(x.shape[-2]), int(x.shape[-1])))  # (B, D, h, w)

    def _check_input(self, x: Tensor) -> None:
        """Fail with the sensor's name and band count rather than deep inside a convolution.

        Args:
            x: Candidate input.

        Raises:
            ValueError: If `x` is not a 4-D (B, in_chans, H, W) tensor.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{self.modality}: expected chips of shape (B, {self.in_chans}, H, W) for "
                f"{self.name} built with in_chans={self.in_chans}, got {tuple(x.shape)}"
            )

    def _to_dense(self, features: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Bring timm's `forward_features` output to (B, D, h, w).

        Args:
            features: (B, D, h, w) for most CNNs, (B, h, w, D) where the model's `output_fmt`
                is NHWC (Swin, ...), or (B, T, D) tokens for ViT-like models.
            image_size: Input (H, W), used to recover a ViT's patch grid.

        Returns:
            Feature map of shape (B, D, h, w).

        Raises:
            ValueError: If a token sequence cannot be laid on a grid.
        """
        if features.ndim == 4:
            if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
                return features.permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)
            return features
        patches = features[:, self.num_prefix_tokens :]  # (B, h * w, D)
        height, width = self._token_grid(int(patches.shape[1]), image_size)
        return patches.transpose(1, 2).reshape(
            patches.shape[0], patches.shape[2], height, width
        )  # (B, D, h, w)

    def _token_grid(self, n_tokens: int, image_size: tuple[int, int]) -> tuple[int, int]:
        """Grid (h, w) of a ViT-like model's patch tokens.

        Args:
            n_tokens: Patch tokens per sample (prefix tokens excluded).
            image_size: Input (H, W).

        Returns:
            The grid (h, w) with h * w == n_tokens.

        Raises:
            ValueError: If no grid with `n_tokens` cells can be found.
        """
        embed = getattr(self.backbone, "patch_embed", None)
        if embed is not None and hasattr(embed, "dynamic_feat_size"):
            # Handles non-square chips and dynamic padding exactly as the model itself does.
            height, width = embed.dynamic_feat_size(image_size)
        else:
            height = width = round(n_tokens**0.5)
        if height * width != n_tokens:
            raise ValueError(
                f"{self.modality}: cannot lay {n_tokens} tokens of {self.name} on a grid for "
                f"input size {image_size}"
            )
        return int(height), int(width)


def _check_model_name(name: str) -> None:
    """Reject names that timm does not know or would resolve over the network.

    Args:
        name: timm model name, optionally with a pretrained tag (`resnet18.a1_in1k`).

    Raises:
        ConfigError: If the name is a hub reference or unknown to timm.
    """
    if name.startswith(_REMOTE_PREFIXES):
        raise ConfigError(
            f"{name!r} needs the Hugging Face hub; use a timm architecture name and a local "
            "checkpoint_path or pretrained_file"
        )
    if not timm.is_model(name):
        raise ConfigError(f"unknown timm model {name!r}; see timm.list_models()")
