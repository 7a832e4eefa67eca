"""Tests of the encoder package: timm backbones per sensor, projection head, fusion transformer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError
from eo_mmcl.models import (
    FusionTransformer,
    ModalityEncoder,
    PairedEncoder,
    ProjectionHead,
    build_paired_encoder,
)

BATCH = 4
CHIP = 32

# (timm name, extra timm kwargs, embedding width, token grid side at 32 px)
ARCHITECTURES: list[tuple[str, dict[str, Any], int, int]] = [
    ("resnet18", {}, 512, 1),
    ("efficientnet_b0", {"output_stride": 16}, 1280, 2),
    ("vit_tiny_patch16_224", {"img_size": CHIP, "dynamic_img_size": True}, 192, 2),
]


def _chips(channels: int, size: int = CHIP, batch: int = BATCH, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=generator)


def _batch(size: int = CHIP, s1: int = 2, s2: int = 12) -> dict[str, Tensor]:
    return {"image_s1": _chips(s1, size, seed=1), "image_s2": _chips(s2, size, seed=2)}


def _first_conv_in_channels(encoder: ModalityEncoder) -> int:
    conv = next(m for m in encoder.backbone.modules() if isinstance(m, nn.Conv2d))
    return int(conv.in_channels)


# --- ModalityEncoder ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs", "width", "side"), ARCHITECTURES)
def test_encoder_views_have_expected_shapes(
    name: str, kwargs: dict[str, Any], width: int, side: int
) -> None:
    torch.manual_seed(0)
    encoder = ModalityEncoder(name, in_chans=12, **kwargs).eval()
    x = _chips(12)
    with torch.no_grad():
        pooled, tokens, dense = encoder(x), encoder.tokens(x), encoder.dense(x)
        features = encoder.encode(x)
    assert encoder.num_features == width
    assert pooled.shape == (BATCH, width)
    assert tokens.shape == (BATCH, side * side, width)
    assert dense.shape == (BATCH, width, side, side)
    # The three views are one feature map: tokens are the dense map in row-major order, and
    # the single-pass encode() agrees with the separate calls.
    torch.testing.assert_close(tokens, dense.flatten(2).transpose(1, 2))
    torch.testing.assert_close(features.pooled, pooled)
    torch.testing.assert_close(features.dense, dense)
    torch.testing.assert_close(features.tokens, tokens)
    assert features.grid_size == (side, side)


def test_channels_last_backbone_gives_channels_first_dense_map() -> None:
    # Swin's forward_features is NHWC; a tiny configuration keeps the test fast.
    encoder = ModalityEncoder(
        "swin_tiny_patch4_window7_224",
        in_chans=2,
        img_size=64,
        window_size=4,
        embed_dim=24,
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 1, 1),
    ).eval()
    x = _chips(2, size=64)
    with torch.no_grad():
        raw = encoder.backbone.forward_features(x)  # (B, 2, 2, 192)
        dense = encoder.dense(x)
    assert encoder.backbone.output_fmt == "NHWC"
    assert dense.shape == (BATCH, 192, 2, 2)
    torch.testing.assert_close(dense, raw.permute(0, 3, 1, 2))


def test_vit_tokens_drop_prefix_tokens() -> None:
    torch.manual_seed(0)
    encoder = ModalityEncoder(
        "vit_tiny_patch16_224", in_chans=2, img_size=CHIP, dynamic_img_size=True
    ).eval()
    x = _chips(2, size=64)
    with torch.no_grad():
        raw = encoder.backbone.forward_features(x)  # (B, 1 + 16, D): CLS first
        tokens = encoder.tokens(x)
    assert encoder.num_prefix_tokens == 1
    assert raw.shape[1] == 17
    torch.testing.assert_close(tokens, raw[:, 1:])


def test_vit_dense_handles_non_square_chips() -> None:
    encoder = ModalityEncoder(
        "vit_tiny_patch16_224", in_chans=2, img_size=CHIP, dynamic_img_size=True
    ).eval()
    with torch.no_grad():
        dense = encoder.dense(torch.randn(1, 2, 32, 64))
    assert dense.shape == (1, 192, 2, 4)


@pytest.mark.parametrize(
    ("size", "kwargs", "n_tokens"),
    [
        (32, {}, 1),
        (64, {}, 4),
        (96, {}, 9),
        (128, {}, 16),
        (32, {"output_stride": 16}, 4),
        (64, {"output_stride": 16}, 16),
        (32, {"output_stride": 8}, 16),
    ],
)
def test_resnet18_token_count_per_chip_size(
    size: int, kwargs: dict[str, Any], n_tokens: int
) -> None:
    encoder = ModalityEncoder("resnet18", in_chans=2, **kwargs).eval()
    with torch.no_grad():
        tokens = encoder.tokens(_chips(2, size=size, batch=1))
    assert tokens.shape == (1, n_tokens, 512)
    # The documented stride predicts the count.
    assert encoder.reduction == kwargs.get("output_stride", 32)
    assert (size // encoder.reduction) ** 2 == n_tokens


def test_wrong_channel_count_raises_clear_error() -> None:
    encoder = ModalityEncoder("resnet18", in_chans=2, modality="s1")
    with pytest.raises(ValueError, match=r"s1: expected chips of shape \(B, 2, H, W\)"):
        encoder(_chips(12))
    with pytest.raises(ValueError, match="s1"):
        encoder.tokens(torch.randn(2, CHIP, CHIP))  # batch dimension missing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "no_such_net"}, "unknown timm model"),
        ({"name": "hf-hub:timm/resnet18.a1_in1k"}, "Hugging Face hub"),
        ({"in_chans": 0}, "in_chans"),
        ({"pretrained": True}, "set by ModalityEncoder"),
        ({"num_classes": 10}, "set by ModalityEncoder"),
        ({"img_size": 32}, "timm cannot build"),  # ResNets take no img_size
    ],
)
def test_invalid_encoder_config_raises(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModalityEncoder(**{"name": "resnet18", "in_chans": 2, **kwargs})


def test_missing_weight_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        ModalityEncoder("resnet18", in_chans=2, checkpoint_path=tmp_path / "absent.pt")
    with pytest.raises(ConfigError, match="not both"):
        ModalityEncoder(
            "resnet18",
            in_chans=2,
            checkpoint_path=tmp_path / "a.pt",
            pretrained_file=tmp_path / "b.pt",
        )


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_path_restores_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = ModalityEncoder("resnet18", in_chans=12).eval()
    path = tmp_path / "s2_backbone.pt"
    torch.save(trained.backbone.state_dict(), path)
    torch.manual_seed(1)  # a different random init, overwritten by the checkpoint
    fresh = ModalityEncoder("resnet18", in_chans=12).eval()
    restored = ModalityEncoder("resnet18", in_chans=12, checkpoint_path=path).eval()
    x = _chips(12)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), trained(x))
        torch.testing.assert_close(restored(x), trained(x), rtol=0, atol=0)
        torch.testing.assert_close(restored.tokens(x), trained.tokens(x), rtol=0, atol=0)


def test_checkpoint_of_other_band_count_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s2_backbone.pt"
    torch.save(ModalityEncoder("resnet18", in_chans=12).backbone.state_dict(), path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ModalityEncoder("resnet18", in_chans=2, checkpoint_path=path)


def test_paired_encoder_loads_per_modality_checkpoints(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = build_paired_encoder().eval()
    path = tmp_path / "s1.pt"
    torch.save(trained.s1.backbone.state_dict(), path)
    torch.manual_seed(1)
    restored = build_paired_encoder(checkpoint_paths={"s1": str(path)}).eval()
    batch = _batch()
    with torch.no_grad():
        want, got = trained.embed(batch), restored.embed(batch)
    torch.testing.assert_close(got["s1"], want["s1"], rtol=0, atol=0)
    assert not torch.allclose(got["s2"], want["s2"])  # no checkpoint: still random


def test_pretrained_file_is_adapted_to_in_chans(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(0)
    # An RGB classifier as ImageNet weights would come: 3 bands and a 10-class head.
    rgb = timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=10)
    path = tmp_path / "resnet18_rgb.pt"
    torch.save(rgb.state_dict(), path)
    encoder = ModalityEncoder("resnet18", in_chans=2, pretrained_file=path)
    assert _first_conv_in_channels(encoder) == 2
    torch.testing.assert_close(
        encoder.backbone.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight, rtol=0, atol=0
    )


# --- PairedEncoder ------------------------------------------------------------------------------


def test_paired_encoder_respects_band_counts() -> None:
    encoder = build_paired_encoder()
    assert isinstance(encoder, PairedEncoder)
    assert _first_conv_in_channels(encoder.s1) == 2
    assert _first_conv_in_channels(encoder.s2) == 12
    custom = build_paired_encoder(s1_channels=4, s2_channels=13)
    assert (_first_conv_in_channels(custom.s1), _first_conv_in_channels(custom.s2)) == (4, 13)


def test_paired_encoder_outputs() -> None:
    torch.manual_seed(0)
    encoder = build_paired_encoder("resnet18", output_stride=16).eval()
    batch = _batch()
    with torch.no_grad():
        embeddings = encoder.embed(batch)
        tokens = encoder.tokens(batch)
        dense = encoder.dense(batch)
        features = encoder.encode(batch)
    assert encoder.modalities == ("s1", "s2")
    assert encoder.num_features == {"s1": 512, "s2": 512}
    for name in ("s1", "s2"):
        assert embeddings[name].shape == (BATCH, 512)
        assert tokens[name].shape == (BATCH, 4, 512)
        assert dense[name].shape == (BATCH, 512, 2, 2)
        torch.testing.assert_close(features[name].pooled, embeddings[name])
    # Each modality goes through its own backbone: the embeddings differ.
    assert not torch.allclose(embeddings["s1"], embeddings["s2"])


def test_paired_encoder_mixed_backbones() -> None:
    encoder = build_paired_encoder({"s1": "resnet18", "s2": "efficientnet_b0"}).eval()
    with torch.no_grad():
        embeddings = encoder.embed(_batch())
    assert embeddings["s1"].shape == (BATCH, 512)
    assert embeddings["s2"].shape == (BATCH, 1280)


def test_paired_encoder_input_errors() -> None:
    encoder = build_paired_encoder()
    with pytest.raises(KeyError, match="image_s1"):
        encoder.embed({"image_s2": _chips(12)})
    with pytest.raises(ValueError, match=r"s1: expected chips of shape \(B, 2, H, W\)"):
        encoder.embed({"image_s1": _chips(12), "image_s2": _chips(12)})
    with pytest.raises(KeyError, match="unknown modality"):
        encoder["s3"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"checkpoint_paths": {"sar": "x.pt"}},
        {"backbone": {"s1": "resnet18"}},
        {"s2_channels": 0},
    ],
)
def test_paired_encoder_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build_paired_encoder(**kwargs)


# --- ProjectionHead -----------------------------------------------------------------------------


@pytest.mark.parametrize(("num_layers", "batch_norm"), [(1, True), (2, True), (3, False)])
def test_projection_head_shapes(num_layers: int, batch_norm: bool) -> None:
    head = ProjectionHead(
        512, hidden_dim=64, out_dim=32, num_layers=num_layers, batch_norm=batch_norm
    )
    out = head(torch.randn(BATCH, 512))
    assert out.shape == (BATCH, 32)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == num_layers
    assert any(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == batch_norm


def test_projection_head_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, 512\)"):
        ProjectionHead(512, 64, 32)(torch.randn(BATCH, 256))
    with pytest.raises(ConfigError, match="num_layers"):
        ProjectionHead(512, 64, 32, num_layers=0)


# --- FusionTransformer --------------------------------------------------------------------------


def _fusion(**kwargs: Any) -> FusionTransformer:
    torch.manual_seed(0)
    return FusionTransformer([48, 80], dim=32, **kwargs).eval()


def _tokens(n1: int = 16, n2: int = 16, seed: int = 3) -> list[Tensor | None]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(BATCH, n1, 48, generator=generator),
        torch.randn(BATCH, n2, 80, generator=generator),
    ]


def test_fusion_output_shape() -> None:
    fusion = _fusion()
    out = fusion(_tokens())
    assert fusion.num_modalities == 2
    assert out.shape == (BATCH, 32)
    assert torch.isfinite(out).all()


def test_fusion_returns_the_cls_token() -> None:
    fusion = _fusion()
    captured: list[Tensor] = []
    fusion.encoder.register_forward_hook(lambda module, args, output: captured.append(output))
    with torch.no_grad():
        out = fusion(_tokens(n1=4, n2=9))
    assert captured[0].shape == (BATCH, 1 + 4 + 9, 32)  # CLS first, then both modalities
    torch.testing.assert_close(out, captured[0][:, 0], rtol=0, atol=0)


def test_fusion_masking_changes_output() -> None:
    fusion = _fusion()
    tokens = _tokens()
    mask = torch.zeros(BATCH, 16, dtype=torch.bool)
    mask[:, :12] = True  # COrAL-style: 75% of modality 0 hidden
    with torch.no_grad():
        full = fusion(tokens)
        none_masked = fusion(tokens, masks=[torch.zeros_like(mask), None])
        masked = fusion(tokens, masks=[mask, None])
    torch.testing.assert_close(none_masked, full)
    assert not torch.allclose(masked, full, atol=1e-4)
    assert torch.isfinite(masked).all()


def test_fusion_masked_tokens_are_ignored() -> None:
    fusion = _fusion()
    tokens = _tokens()
    mask = torch.zeros(BATCH, 16, dtype=torch.bool)
    mask[:, ::2] = True
    changed = [t.clone() for t in tokens if t is not None]
    changed[0][mask] = float("nan")  # whatever a masked token holds, even NaN, is unseen
    with torch.no_grad():
        out = fusion(tokens, masks=[mask, None])
        out_changed = fusion(list(changed), masks=[mask, None])
    torch.testing.assert_close(out_changed, out)


def test_fully_masked_modality_equals_absent_modality() -> None:
    fusion = _fusion()
    tokens = _tokens()
    all_masked = torch.ones(BATCH, 16, dtype=torch.bool)
    with torch.no_grad():
        only_s2 = fusion([None, tokens[1]])
        masked_s1 = fusion(tokens, masks=[all_masked, None])
        only_s1 = fusion([tokens[0], None])
        masked_s2 = fusion(tokens, masks=[None, all_masked])
    torch.testing.assert_close(masked_s1, only_s2, rtol=0, atol=0)
    torch.testing.assert_close(masked_s2, only_s1, rtol=0, atol=0)
    assert torch.isfinite(only_s2).all() and torch.isfinite(only_s1).all()
    assert not torch.allclose(only_s1, only_s2)


def test_per_sample_fully_masked_modality_equals_absent() -> None:
    fusion = _fusion()
    tokens = _tokens()
    mask = torch.zeros(BATCH, 16, dtype=torch.bool)
    mask[0] = True  # sample 0 has no SAR; the others have all of it
    with torch.no_grad():
        mixed = fusion(tokens, masks=[mask, None])
        only_s2 = fusion([None, tokens[1]])
        full = fusion(tokens)
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed[0], only_s2[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[1:], full[1:], rtol=1e-5, atol=1e-5)


def test_fusion_all_modalities_masked_is_finite() -> None:
    fusion = _fusion()
    tokens = _tokens()
    masks: list[Tensor | None] = [
        torch.ones(BATCH, 16, dtype=torch.bool),
        torch.ones(BATCH, 16, dtype=torch.bool),
    ]
    with torch.no_grad():
        out = fusion(tokens, masks=masks)
    assert torch.isfinite(out).all()


def test_fusion_uses_token_positions() -> None:
    fusion = _fusion()
    tokens = _tokens()
    shuffled = [
        tokens[0][:, torch.randperm(16, generator=torch.Generator().manual_seed(0))],
        tokens[1],
    ]
    with torch.no_grad():
        out, out_shuffled = fusion(tokens), fusion(shuffled)
    # Without positions, attention + CLS pooling would be permutation invariant.
    assert not torch.allclose(out, out_shuffled, atol=1e-5)


def test_fusion_accepts_varying_and_non_square_token_counts() -> None:
    fusion = _fusion()
    with torch.no_grad():
        small = fusion(_tokens(n1=1, n2=4))
        rectangular = fusion(_tokens(n1=8, n2=8), grid_sizes=[(2, 4), (4, 2)])
    assert small.shape == rectangular.shape == (BATCH, 32)
    with pytest.raises(ValueError, match="grid_sizes"):
        fusion(_tokens(n1=8, n2=16))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, t: f([t[0]]), "expects 2 entries"),
        (lambda f, t: f([None, None]), "at least one modality"),
        (lambda f, t: f([t[1], t[0]]), "modality 0: expected tokens"),
        (lambda f, t: f(t, masks=[torch.zeros(BATCH, 16), None]), "bool mask"),
        (lambda f, t: f(t, masks=[torch.zeros(BATCH, 4, dtype=torch.bool), None]), "bool mask"),
    ],
)
def test_fusion_input_errors(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(_fusion(), _tokens())


@pytest.mark.parametrize(
    "kwargs", [{"dim": 30}, {"dim": 32, "heads": 3}, {"depth": 0}, {"dropout": 1.0}]
)
def test_fusion_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        FusionTransformer([48, 80], **{"dim": 32, **kwargs})


def test_fusion_is_deterministic_under_seed() -> None:
    def run() -> Tensor:
        torch.manual_seed(0)
        fusion = FusionTransformer([48, 80], dim=32, dropout=0.1).train()
        return fusion(_tokens(), masks=[torch.rand(BATCH, 16) < 0.75, None])

    first, second = run(), run()
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.manual_seed(1)
    other = FusionTransformer([48, 80], dim=32, dropout=0.1).train()(_tokens())
    assert not torch.allclose(first, other)


def test_encoders_are_deterministic_under_seed() -> None:
    def run() -> Tensor:
        torch.manual_seed(0)
        return build_paired_encoder().eval().embed(_batch())["s2"]

    with torch.no_grad():
        torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_gradients_reach_both_backbones_through_fusion() -> None:
    torch.manual_seed(0)
    encoder = build_paired_encoder("resnet18", output_stride=16)
    fusion = FusionTransformer([512, 512], dim=32)
    tokens = encoder.tokens(_batch())  # 2x2 tokens per modality at 32 px
    fused = fusion([tokens["s1"], tokens["s2"]])
    fused.pow(2).sum().backward()
    for name in ("s1", "s2"):
        grad = encoder[name].backbone.conv1.weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    for projection in fusion.projections:
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    assert fusion.cls_token.grad is not None and fusion.modality_embed.grad is not None
