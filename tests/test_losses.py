"""Tests of eo_mmcl.losses against hand-written references, analytic values and invariances."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import BarlowTwinsLoss as LightlyBarlowTwinsLoss
from lightly.loss import NTXentLoss as LightlyNTXentLoss
from torch import Tensor, nn

from eo_mmcl.losses import (
    BarlowTwinsLoss,
    CoMMLoss,
    CoRALLoss,
    DeCURLoss,
    LossOutput,
    NTXentLoss,
    SymmetricInfoNCELoss,
    ViewMasks,
    complementary_token_masks,
    cross_correlation,
    directional_infonce,
    off_diagonal,
    orthogonality_penalty,
    random_token_mask,
    unique_decorrelation_loss,
)

# torch.nn.functional.batch_norm's variance floor, which Barlow Twins standardisation uses.
BN_EPS = 1e-5


def randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def hadamard8() -> Tensor:
    """Sylvester Hadamard matrix: columns 1..7 are zero-mean, unit-variance, orthogonal."""
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    return torch.kron(torch.kron(h2, h2), h2)


def assert_nonzero_grad(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


# --------------------------------------------------------------------------------------------
# Hand-written references (plain loops, float64)
# --------------------------------------------------------------------------------------------


def unit(v: Tensor) -> Tensor:
    return v / torch.sqrt((v * v).sum())


def ref_clip(z1: Tensor, z2: Tensor, t: float) -> Tensor:
    n = z1.shape[0]
    a = [unit(v) for v in z1]
    b = [unit(v) for v in z2]
    total = torch.zeros((), dtype=torch.float64)
    for queries, keys in ((a, b), (b, a)):
        for i in range(n):
            logits = torch.stack([(queries[i] * keys[j]).sum() / t for j in range(n)])
            total = total - (logits[i] - torch.log(torch.exp(logits).sum()))
    return total / (2 * n)


def ref_ntxent(za: Tensor, zb: Tensor, t: float) -> Tensor:
    n = za.shape[0]
    emb = [unit(v) for v in torch.cat([za, zb])]
    total = torch.zeros((), dtype=torch.float64)
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = {k: (emb[i] * emb[k]).sum() / t for k in range(2 * n) if k != i}
        denominator = sum(torch.exp(s) for s in sims.values())
        total = total - torch.log(torch.exp(sims[positive]) / denominator)
    return total / (2 * n)


def ref_corr(x: Tensor, y: Tensor) -> Tensor:
    n, dx = x.shape
    dy = y.shape[1]
    c = torch.zeros(dx, dy, dtype=torch.float64)
    for i in range(dx):
        xi = x[:, i]
        sx = torch.sqrt(((xi - xi.mean()) ** 2).sum() / n + BN_EPS)
        for j in range(dy):
            yj = y[:, j]
            sy = torch.sqrt(((yj - yj.mean()) ** 2).sum() / n + BN_EPS)
            c[i, j] = ((xi - xi.mean()) * (yj - yj.mean())).sum() / (n * sx * sy)
    return c


def ref_block_loss(c: Tensor, diag_target: float, lam: float) -> Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            total = total + ((c[i, j] - diag_target) ** 2 if i == j else lam * c[i, j] ** 2)
    return total


def ref_barlow(za: Tensor, zb: Tensor, lam: float) -> Tensor:
    return ref_block_loss(ref_corr(za, zb), 1.0, lam)


def ref_decur(
    z1a: Tensor, z1b: Tensor, z2a: Tensor, z2b: Tensor, k: int, lam: float, wc: float, wi: float
) -> Tensor:
    c12 = ref_corr(z1a, z2a)
    common = ref_block_loss(c12[:k, :k], 1.0, lam)
    unique = ref_block_loss(c12[k:, k:], 0.0, lam)
    intra = ref_barlow(z1a, z1b, lam) + ref_barlow(z2a, z2b, lam)
    return (wi * intra + wc * (common + unique) / 2) / 3


def ref_cos2(x: Tensor, y: Tensor) -> Tensor:
    return torch.stack([(unit(a) * unit(b)).sum() ** 2 for a, b in zip(x, y, strict=True)])


# --------------------------------------------------------------------------------------------
# Symmetric InfoNCE (CLIP)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_infonce_matches_reference(temperature: float) -> None:
    z1, z2 = randn(6, 5, seed=0), randn(6, 5, seed=1)
    loss = SymmetricInfoNCELoss(temperature=temperature)(z1, z2)
    torch.testing.assert_close(loss, ref_clip(z1, z2, temperature))


@pytest.mark.parametrize(("batch", "temperature"), [(4, 0.07), (8, 0.5), (5, 1.0)])
def test_infonce_analytic_value_for_orthogonal_matched_pairs(
    batch: int, temperature: float
) -> None:
    # Matched, mutually orthogonal pairs: positive logit 1/t, B - 1 negatives with logit 0.
    # The scale 3 checks that inputs are normalised.
    z = 3.0 * torch.eye(batch, dtype=torch.float64)
    loss = SymmetricInfoNCELoss(temperature=temperature)(z, z.clone())
    expected = math.log(1 + (batch - 1) * math.exp(-1 / temperature))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_infonce_is_symmetric_in_modalities() -> None:
    z1, z2 = randn(7, 4, seed=2), randn(7, 4, seed=3)
    loss_fn = SymmetricInfoNCELoss()
    torch.testing.assert_close(loss_fn(z1, z2), loss_fn(z2, z1))


def test_infonce_penalises_mismatched_pairs() -> None:
    z = torch.eye(4, dtype=torch.float64)
    loss_fn = SymmetricInfoNCELoss(temperature=0.1)
    assert loss_fn(z, z.roll(1, dims=0)) > loss_fn(z, z) + 5.0


def test_directional_infonce_places_positives_at_offset() -> None:
    queries = nn.functional.normalize(randn(3, 4, seed=4), dim=1)
    keys = nn.functional.normalize(randn(8, 4, seed=5), dim=1)
    loss = directional_infonce(queries, keys, 2.0, positive_offset=4)
    logits = 2.0 * queries @ keys.T
    expected = -torch.stack([logits[i, 4 + i] - torch.logsumexp(logits[i], 0) for i in range(3)])
    torch.testing.assert_close(loss, expected.mean())
    with pytest.raises(ValueError, match="do not fit"):
        directional_infonce(queries, keys, 2.0, positive_offset=6)


def test_infonce_gradients_reach_both_encoders() -> None:
    torch.manual_seed(0)
    enc1, enc2 = nn.Linear(5, 8), nn.Linear(7, 8)
    loss = SymmetricInfoNCELoss()(enc1(torch.randn(6, 5)), enc2(torch.randn(6, 7)))
    loss.backward()
    assert_nonzero_grad(enc1)
    assert_nonzero_grad(enc2)


def test_learnable_temperature_is_a_parameter_with_gradient() -> None:
    loss_fn = SymmetricInfoNCELoss(temperature=0.07, learnable_temperature=True)
    params = dict(loss_fn.named_parameters())
    assert list(params) == ["logit_scale"]
    assert params["logit_scale"].item() == pytest.approx(math.log(1 / 0.07))
    assert loss_fn.temperature == pytest.approx(0.07)
    z1, z2 = randn(6, 5, seed=6).float(), randn(6, 5, seed=7).float()
    loss = loss_fn(z1, z2)
    torch.testing.assert_close(loss, SymmetricInfoNCELoss(temperature=0.07)(z1, z2))
    loss.backward()
    grad = params["logit_scale"].grad
    assert grad is not None and grad.abs() > 0
    # A fixed temperature adds no parameter for an optimiser to touch.
    assert list(SymmetricInfoNCELoss().parameters()) == []


def test_learnable_logit_scale_is_clipped_at_100() -> None:
    loss_fn = SymmetricInfoNCELoss(temperature=0.07, learnable_temperature=True)
    assert loss_fn.logit_scale is not None
    with torch.no_grad():
        loss_fn.logit_scale.fill_(10.0)  # exp(10) ~ 22026, far above the clip
    z1, z2 = randn(5, 3, seed=8).float(), randn(5, 3, seed=9).float()
    assert loss_fn.temperature == pytest.approx(0.01)
    torch.testing.assert_close(loss_fn(z1, z2), SymmetricInfoNCELoss(temperature=0.01)(z1, z2))


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan"), float("inf")])
def test_infonce_rejects_bad_temperature(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        SymmetricInfoNCELoss(temperature=temperature)


def test_infonce_rejects_learnable_temperature_below_clip() -> None:
    with pytest.raises(ValueError, match=r"learnable temperature must start at >= 0\.01"):
        SymmetricInfoNCELoss(temperature=0.005, learnable_temperature=True)


def test_infonce_rejects_bad_shapes() -> None:
    loss_fn = SymmetricInfoNCELoss()
    with pytest.raises(ValueError, match=r"shape mismatch: z1 has shape \(4, 3\) but z2"):
        loss_fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"z1 must have shape \(batch, dim\)"):
        loss_fn(torch.randn(4), torch.randn(4))


# --------------------------------------------------------------------------------------------
# NT-Xent
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_matches_reference_and_lightly(temperature: float) -> None:
    za, zb = randn(5, 4, seed=10), randn(5, 4, seed=11)
    loss = NTXentLoss(temperature=temperature)(za, zb)
    torch.testing.assert_close(loss, ref_ntxent(za, zb, temperature))
    torch.testing.assert_close(loss, LightlyNTXentLoss(temperature=temperature)(za, zb))


@pytest.mark.parametrize(("batch", "temperature"), [(3, 0.1), (6, 0.5)])
def test_ntxent_analytic_value_for_orthogonal_matched_pairs(batch: int, temperature: float) -> None:
    # Each anchor: positive logit 1/t, 2B - 2 orthogonal negatives (both views) with logit 0.
    z = torch.eye(batch, dtype=torch.float64)
    loss = NTXentLoss(temperature=temperature)(z, 2.0 * z)
    expected = math.log(1 + 2 * (batch - 1) * math.exp(-1 / temperature))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_ntxent_is_symmetric_in_views() -> None:
    za, zb = randn(6, 3, seed=12), randn(6, 3, seed=13)
    loss_fn = NTXentLoss()
    torch.testing.assert_close(loss_fn(za, zb), loss_fn(zb, za))


def test_ntxent_gradients_reach_both_encoders() -> None:
    torch.manual_seed(1)
    enc1, enc2 = nn.Linear(5, 8), nn.Linear(7, 8)
    NTXentLoss()(enc1(torch.randn(6, 5)), enc2(torch.randn(6, 7))).backward()
    assert_nonzero_grad(enc1)
    assert_nonzero_grad(enc2)


def test_ntxent_validation() -> None:
    # lightly alone would accept a negative temperature.
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        NTXentLoss(temperature=-0.1)
    with pytest.raises(ValueError, match="shape mismatch"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(4, 2))


# --------------------------------------------------------------------------------------------
# Barlow Twins and the cross-correlation matrix
# --------------------------------------------------------------------------------------------


def test_cross_correlation_matches_reference() -> None:
    x, y = randn(9, 4, seed=14), 5.0 + 3.0 * randn(9, 3, seed=15)
    c = cross_correlation(x, y)
    assert c.shape == (4, 3)
    torch.testing.assert_close(c, ref_corr(x, y))


def test_cross_correlation_of_standardised_orthogonal_columns_is_identity() -> None:
    z = hadamard8()[:, 1:6]
    torch.testing.assert_close(
        cross_correlation(z, z), torch.eye(5, dtype=torch.float64) / (1 + BN_EPS)
    )


def test_off_diagonal() -> None:
    c = torch.arange(9.0).reshape(3, 3)
    torch.testing.assert_close(off_diagonal(c), torch.tensor([1.0, 2.0, 3.0, 5.0, 6.0, 7.0]))
    assert off_diagonal(torch.zeros(0, 0)).numel() == 0
    with pytest.raises(ValueError, match="square matrix"):
        off_diagonal(torch.zeros(2, 3))


@pytest.mark.parametrize("lam", [5e-3, 0.5])
def test_barlow_matches_reference_and_composes_lightly(lam: float) -> None:
    za, zb = randn(10, 4, seed=16), randn(10, 4, seed=17)
    loss = BarlowTwinsLoss(lambda_param=lam)(za, zb)
    torch.testing.assert_close(loss, ref_barlow(za, zb, lam))
    torch.testing.assert_close(loss, LightlyBarlowTwinsLoss(lambda_param=lam)(za, zb))
    # The public cross_correlation is the matrix lightly builds internally.
    c = cross_correlation(za, zb)
    from_c = ((torch.diagonal(c) - 1) ** 2).sum() + lam * (off_diagonal(c) ** 2).sum()
    torch.testing.assert_close(loss, from_c)


def test_barlow_default_lambda_is_paper_value() -> None:
    assert BarlowTwinsLoss().lambda_param == 5e-3


def test_barlow_is_zero_for_identity_correlation_and_positive_otherwise() -> None:
    z = hadamard8()[:, 1:5]
    # Per-feature affine changes do not matter: features are standardised along the batch.
    zb = 2.0 * z + torch.tensor([1.0, -3.0, 0.5, 7.0], dtype=torch.float64)
    assert BarlowTwinsLoss()(z, zb).item() < 1e-8
    assert BarlowTwinsLoss()(z, z.roll(1, dims=1)).item() > 1.0


def test_barlow_is_symmetric_in_views() -> None:
    za, zb = randn(8, 5, seed=18), randn(8, 5, seed=19)
    torch.testing.assert_close(BarlowTwinsLoss()(za, zb), BarlowTwinsLoss()(zb, za))


def test_barlow_validation() -> None:
    with pytest.raises(ValueError, match="lambda_param must be a non-negative finite number"):
        BarlowTwinsLoss(lambda_param=-1.0)
    with pytest.raises(ValueError, match="needs at least 2 sample"):
        BarlowTwinsLoss()(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="shape mismatch"):
        BarlowTwinsLoss()(torch.randn(4, 3), torch.randn(4, 5))


# --------------------------------------------------------------------------------------------
# DeCUR
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "wc", "wi"), [(2, 1.0, 1.0), (4, 0.5, 2.0), (6, 1.0, 1.0)])
def test_decur_matches_reference(k: int, wc: float, wi: float) -> None:
    z = [randn(10, 6, seed=20 + i) for i in range(4)]
    out = DeCURLoss(common_dim=k, lambda_param=0.1, cross_weight=wc, intra_weight=wi)(*z)
    assert isinstance(out, LossOutput)
    torch.testing.assert_close(out.total, ref_decur(*z, k=k, lam=0.1, wc=wc, wi=wi))
    assert set(out.terms) == {"intra_1", "intra_2", "cross_common", "cross_unique"}
    torch.testing.assert_close(out.terms["intra_1"], ref_barlow(z[0], z[1], 0.1))
    torch.testing.assert_close(out.terms["intra_2"], ref_barlow(z[2], z[3], 0.1))
    c12 = ref_corr(z[0], z[2])
    torch.testing.assert_close(out.terms["cross_common"], ref_block_loss(c12[:k, :k], 1.0, 0.1))
    torch.testing.assert_close(out.terms["cross_unique"], ref_block_loss(c12[k:, k:], 0.0, 0.1))


def test_decur_is_zero_for_ideal_common_unique_structure() -> None:
    h = hadamard8()
    # Features 0-1 are shared by both modalities; 2-3 are unique to each (orthogonal columns).
    z1, z2 = h[:, [1, 2, 3, 4]], h[:, [1, 2, 5, 6]]
    out = DeCURLoss(common_dim=2)(z1, 3.0 * z1 + 1.0, z2, z2.clone())
    assert out.total.item() < 1e-8
    # Declaring a unique feature as common must cost: its cross-modal correlation is 0, not 1.
    assert DeCURLoss(common_dim=3)(z1, z1, z2, z2).terms["cross_common"].item() > 0.99


def test_decur_pushes_unique_diagonal_to_zero() -> None:
    z = hadamard8()[:, 1:5]
    # Identical modalities: the common block is perfect; the unique block's diagonal is all 1.
    out = DeCURLoss(common_dim=2)(z, z, z, z)
    assert out.terms["cross_common"].item() < 1e-8
    assert out.terms["cross_unique"].item() == pytest.approx(2.0 / (1 + BN_EPS) ** 2)


def test_unique_decorrelation_loss() -> None:
    c = torch.tensor([[0.5, 0.2], [-0.1, 0.0]])
    expected = 0.5**2 + 0.0**2 + 0.3 * (0.2**2 + 0.1**2)
    assert unique_decorrelation_loss(c, 0.3).item() == pytest.approx(expected)
    assert unique_decorrelation_loss(torch.zeros(0, 0), 0.3).item() == 0.0


def test_decur_full_common_dim_is_cross_modal_barlow_twins() -> None:
    z = [randn(8, 4, seed=30 + i) for i in range(4)]
    out = DeCURLoss(common_dim=4)(*z)
    assert out.terms["cross_unique"].item() == 0.0
    torch.testing.assert_close(out.terms["cross_common"], ref_barlow(z[0], z[2], 5e-3))


def test_decur_is_symmetric_in_modalities() -> None:
    z = [randn(9, 5, seed=40 + i) for i in range(4)]
    loss_fn = DeCURLoss(common_dim=3)
    torch.testing.assert_close(loss_fn(*z).total, loss_fn(z[2], z[3], z[0], z[1]).total)


def test_decur_gradients_reach_both_encoders() -> None:
    torch.manual_seed(2)
    enc1, enc2 = nn.Linear(5, 6), nn.Linear(7, 6)
    x1, x2 = torch.randn(8, 5), torch.randn(8, 7)
    noise = [0.1 * torch.randn(8, d) for d in (5, 5, 7, 7)]
    out = DeCURLoss(common_dim=3)(
        enc1(x1 + noise[0]), enc1(x1 + noise[1]), enc2(x2 + noise[2]), enc2(x2 + noise[3])
    )
    out.total.backward()
    assert_nonzero_grad(enc1)
    assert_nonzero_grad(enc2)


def test_decur_validation() -> None:
    with pytest.raises(ValueError, match="common_dim must be >= 1"):
        DeCURLoss(common_dim=0)
    with pytest.raises(ValueError, match=r"common_dim \(5\) exceeds the embedding dimension \(4\)"):
        DeCURLoss(common_dim=5)(*(torch.randn(6, 4) for _ in range(4)))
    with pytest.raises(ValueError, match="cross_weight must be a non-negative"):
        DeCURLoss(common_dim=2, cross_weight=-1.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        DeCURLoss(common_dim=2)(
            torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 3), torch.randn(6, 3)
        )


# --------------------------------------------------------------------------------------------
# CoMM
# --------------------------------------------------------------------------------------------


def test_comm_matches_reference() -> None:
    za, zb = randn(6, 4, seed=50), randn(6, 4, seed=51)
    singles_a = [randn(6, 4, seed=52), randn(6, 4, seed=53)]
    singles_b = [randn(6, 4, seed=54), randn(6, 4, seed=55)]
    out = CoMMLoss(temperature=0.2)(za, zb, singles_a, singles_b)
    fused = ref_ntxent(za, zb, 0.2)
    modality = [
        (ref_ntxent(sa, zb, 0.2) + ref_ntxent(sb, za, 0.2)) / 2
        for sa, sb in zip(singles_a, singles_b, strict=True)
    ]
    assert list(out.terms) == ["fused", "modality_0", "modality_1"]
    torch.testing.assert_close(out.terms["fused"], fused)
    torch.testing.assert_close(out.terms["modality_0"], modality[0])
    torch.testing.assert_close(out.terms["modality_1"], modality[1])
    torch.testing.assert_close(out.total, (fused + modality[0] + modality[1]) / 3)


def test_comm_is_symmetric_in_views() -> None:
    za, zb = randn(5, 3, seed=56), randn(5, 3, seed=57)
    sa, sb = [randn(5, 3, seed=58)], [randn(5, 3, seed=59)]
    loss_fn = CoMMLoss()
    torch.testing.assert_close(loss_fn(za, zb, sa, sb).total, loss_fn(zb, za, sb, sa).total)


def test_comm_single_modality_term_uses_the_other_view() -> None:
    # A single-modality embedding equal to its own view's full embedding is not enough: it is
    # scored against the other view, so the term equals the fused term.
    za, zb = randn(6, 4, seed=60), randn(6, 4, seed=61)
    out = CoMMLoss()(za, zb, [za], [zb])
    torch.testing.assert_close(out.terms["modality_0"], out.terms["fused"])


def test_comm_gradients_reach_both_encoders() -> None:
    torch.manual_seed(3)
    enc1, enc2 = nn.Linear(5, 8), nn.Linear(7, 8)
    x1, x2 = torch.randn(6, 5), torch.randn(6, 7)
    views = [(x1 + 0.1 * torch.randn_like(x1), x2 + 0.1 * torch.randn_like(x2)) for _ in range(2)]
    # A toy fusion: the sum of the present modalities' features.
    full = [enc1(a) + enc2(b) for a, b in views]
    singles = [[enc1(a), enc2(b)] for a, b in views]
    CoMMLoss()(full[0], full[1], singles[0], singles[1]).total.backward()
    assert_nonzero_grad(enc1)
    assert_nonzero_grad(enc2)


def test_comm_validation() -> None:
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least one single-modality embedding"):
        CoMMLoss()(z, z, [], [])
    with pytest.raises(ValueError, match="different numbers of modalities"):
        CoMMLoss()(z, z, [z, z], [z])
    with pytest.raises(ValueError, match=r"shape mismatch: z_a .* singles_b\[0\]"):
        CoMMLoss()(z, z, [z], [torch.randn(4, 2)])
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        CoMMLoss(temperature=0.0)


# --------------------------------------------------------------------------------------------
# COrAL
# --------------------------------------------------------------------------------------------


def test_orthogonality_penalty_matches_reference() -> None:
    u1, u2, z = randn(7, 4, seed=70), randn(7, 4, seed=71), randn(7, 4, seed=72)
    expected = (ref_cos2(u1, u2) + ref_cos2(u1, z) + ref_cos2(u2, z)).mean()
    torch.testing.assert_close(orthogonality_penalty(u1, u2, z), expected)


def test_orthogonality_penalty_analytic_values() -> None:
    e = torch.eye(3, dtype=torch.float64)
    # Mutually orthogonal per sample (differently per sample): no penalty.
    u1, u2, z = e, e.roll(1, dims=0), e.roll(2, dims=0)
    assert orthogonality_penalty(u1, u2, z).item() == pytest.approx(0.0, abs=1e-12)
    # Identical (and anti-aligned, scaled) inputs: three squared cosines of 1.
    x = randn(5, 3, seed=73)
    assert orthogonality_penalty(x, x, x).item() == pytest.approx(3.0)
    assert orthogonality_penalty(x, -2.0 * x, 0.5 * x).item() == pytest.approx(3.0)
    assert orthogonality_penalty(*(randn(5, 3, seed=74 + i) for i in range(3))).item() > 0


def test_coral_matches_reference() -> None:
    z = [randn(6, 4, seed=80 + i) for i in range(6)]
    za, zb, u1a, u1b, u2a, u2b = z
    out = CoRALLoss(temperature=0.1, orthogonality_weight=2.5)(*z)
    penalty_a = (ref_cos2(u1a, u2a) + ref_cos2(u1a, za) + ref_cos2(u2a, za)).mean()
    penalty_b = (ref_cos2(u1b, u2b) + ref_cos2(u1b, zb) + ref_cos2(u2b, zb)).mean()
    expected_terms = {
        "shared": ref_ntxent(za, zb, 0.1),
        "unique_1": ref_ntxent(u1a, u1b, 0.1),
        "unique_2": ref_ntxent(u2a, u2b, 0.1),
        "orthogonality": (penalty_a + penalty_b) / 2,
    }
    assert list(out.terms) == list(expected_terms)
    for name, value in expected_terms.items():
        torch.testing.assert_close(out.terms[name], value, msg=name)
    expected_total = (
        expected_terms["shared"]
        + expected_terms["unique_1"]
        + expected_terms["unique_2"]
        + 2.5 * expected_terms["orthogonality"]
    )
    torch.testing.assert_close(out.total, expected_total)


def test_coral_is_symmetric_in_views_and_modalities() -> None:
    za, zb, u1a, u1b, u2a, u2b = (randn(6, 4, seed=90 + i) for i in range(6))
    loss_fn = CoRALLoss()
    total = loss_fn(za, zb, u1a, u1b, u2a, u2b).total
    torch.testing.assert_close(total, loss_fn(zb, za, u1b, u1a, u2b, u2a).total)
    torch.testing.assert_close(total, loss_fn(za, zb, u2a, u2b, u1a, u1b).total)


def test_coral_orthogonality_weight_scales_only_the_penalty() -> None:
    z = [randn(6, 4, seed=100 + i) for i in range(6)]
    out0, out3 = CoRALLoss(orthogonality_weight=0.0)(*z), CoRALLoss(orthogonality_weight=3.0)(*z)
    penalty = out0.terms["orthogonality"]
    assert penalty > 0
    torch.testing.assert_close(out3.total - out0.total, 3.0 * penalty)


def test_coral_gradients_reach_both_encoders() -> None:
    torch.manual_seed(4)
    shared1, shared2 = nn.Linear(5, 8), nn.Linear(7, 8)
    unique1, unique2 = nn.Linear(5, 8), nn.Linear(7, 8)
    x1, x2 = torch.randn(6, 5), torch.randn(6, 7)
    views = [(x1 + 0.1 * torch.randn_like(x1), x2 + 0.1 * torch.randn_like(x2)) for _ in range(2)]
    z = [shared1(a) + shared2(b) for a, b in views]
    u1 = [unique1(a) for a, _ in views]
    u2 = [unique2(b) for _, b in views]
    out = CoRALLoss()(z[0], z[1], u1[0], u1[1], u2[0], u2[1])
    out.total.backward()
    for module in (shared1, shared2, unique1, unique2):
        assert_nonzero_grad(module)


def test_coral_validation() -> None:
    with pytest.raises(ValueError, match="orthogonality_weight must be a non-negative"):
        CoRALLoss(orthogonality_weight=-1.0)
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        CoRALLoss(temperature=float("nan"))
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"shape mismatch: z_a .* u2_b"):
        CoRALLoss()(z, z, z, z, z, torch.randn(4, 5))
    with pytest.raises(ValueError, match="shape mismatch"):
        orthogonality_penalty(z, z, torch.randn(5, 3))


# --------------------------------------------------------------------------------------------
# COrAL complementary masking
# --------------------------------------------------------------------------------------------


def masks(seed: int = 0, **kwargs: float) -> ViewMasks:
    args: dict[str, float] = {"batch_size": 16, "n_tokens_1": 12, "n_tokens_2": 20, **kwargs}
    return complementary_token_masks(
        int(args["batch_size"]),
        int(args["n_tokens_1"]),
        int(args["n_tokens_2"]),
        mask_ratio=args.get("mask_ratio", 0.75),
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.mark.parametrize(
    ("n1", "n2", "ratio", "k1", "k2"),
    [(12, 20, 0.75, 9, 15), (6, 10, 0.75, 4, 8), (49, 196, 0.75, 37, 147), (5, 7, 0.5, 2, 4)],
)
def test_masks_have_exact_proportions_per_sample(
    n1: int, n2: int, ratio: float, k1: int, k2: int
) -> None:
    # k = round(ratio * n) with Python's round: 4.5 -> 4, 2.5 -> 2, 3.5 -> 4.
    m = masks(n_tokens_1=n1, n_tokens_2=n2, mask_ratio=ratio)
    assert m.view1_m1.shape == (16, n1) and m.view2_m1.shape == (16, n1)
    assert m.view1_m2.shape == (16, n2) and m.view2_m2.shape == (16, n2)
    assert all(t.dtype == torch.bool for t in m)
    assert m.view1_m1.sum(dim=1).tolist() == [k1] * 16
    assert m.view2_m2.sum(dim=1).tolist() == [k2] * 16


def test_masks_are_complementary() -> None:
    m = masks()
    assert not m.view1_m2.any(), "view 1 must leave modality 2 intact"
    assert not m.view2_m1.any(), "view 2 must leave modality 1 intact"
    assert m.view1_m1.any() and m.view2_m2.any()


def test_masks_differ_between_samples() -> None:
    m = masks(batch_size=32, n_tokens_1=32, n_tokens_2=32)
    assert len({tuple(row.tolist()) for row in m.view1_m1}) == 32
    assert len({tuple(row.tolist()) for row in m.view2_m2}) == 32
    # Every token position is masked for some sample: the subset is not fixed.
    assert m.view1_m1.any(dim=0).all()


def test_masks_are_deterministic_given_a_seeded_generator() -> None:
    first, again, other = masks(seed=5), masks(seed=5), masks(seed=6)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.view1_m1, other.view1_m1)


def test_mask_ratio_extremes() -> None:
    none = masks(mask_ratio=0.0)
    assert not any(t.any() for t in none)
    full = masks(mask_ratio=1.0)
    assert full.view1_m1.all() and full.view2_m2.all()
    assert not full.view1_m2.any() and not full.view2_m1.any()


def test_random_token_mask_on_requested_device() -> None:
    m = random_token_mask(3, 8, 2, generator=torch.Generator().manual_seed(0), device="cpu")
    assert m.device.type == "cpu" and m.sum(dim=1).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match=r"n_masked must lie in \[0, 8\]"):
        random_token_mask(3, 8, 9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_ratio": 1.5}, r"mask_ratio must lie in \[0, 1\]"),
        ({"mask_ratio": -0.1}, r"mask_ratio must lie in \[0, 1\]"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"n_tokens_2": 0}, "n_tokens_2 must be >= 1"),
    ],
)
def test_mask_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        masks(**kwargs)


# --------------------------------------------------------------------------------------------
# Output convention and distributed gathering
# --------------------------------------------------------------------------------------------


def test_loss_output_unpacks_as_total_and_terms() -> None:
    out = CoMMLoss()(torch.randn(4, 3), torch.randn(4, 3), [torch.randn(4, 3)], [torch.randn(4, 3)])
    total, terms = out
    assert total is out.total and terms is out.terms
    assert total.ndim == 0 and all(t.ndim == 0 for t in terms.values())


def test_gathering_without_process_group_changes_nothing() -> None:
    z = [randn(6, 4, seed=110 + i) for i in range(4)]
    for plain, gathering in [
        (SymmetricInfoNCELoss(), SymmetricInfoNCELoss(gather_distributed=True)),
        (NTXentLoss(), NTXentLoss(gather_distributed=True)),
    ]:
        torch.testing.assert_close(plain(z[0], z[1]), gathering(z[0], z[1]))
    torch.testing.assert_close(
        DeCURLoss(common_dim=2)(*z).total,
        DeCURLoss(common_dim=2, gather_distributed=True)(*z).total,
    )


WORLD_SIZE = 2
GLOBAL_BATCH = 8


def _global_inputs() -> list[Tensor]:
    return [randn(GLOBAL_BATCH, 4, seed=120 + i) for i in range(4)]


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        per_rank = GLOBAL_BATCH // WORLD_SIZE
        local = [
            z[rank * per_rank : (rank + 1) * per_rank].clone().requires_grad_(True)
            for z in _global_inputs()
        ]
        results: dict[str, Tensor] = {}
        losses: dict[str, Callable[[], Tensor]] = {
            "infonce": lambda: SymmetricInfoNCELoss(0.1, gather_distributed=True)(*local[:2]),
            "ntxent": lambda: NTXentLoss(0.1, gather_distributed=True)(*local[:2]),
        }
        for name, compute in losses.items():
            loss = compute()
            (grad,) = torch.autograd.grad(loss, local[0])
            results[name], results[f"{name}_grad"] = loss.detach(), grad
        decur = DeCURLoss(common_dim=2, gather_distributed=True)(*local)
        results["decur"] = decur.total.detach()
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# A hung collective must fail the test, not stall the suite.
@pytest.mark.timeout(120)
def test_distributed_gathering_matches_the_global_batch(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(
        _ddp_worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    z = [t.clone().requires_grad_(True) for t in _global_inputs()]
    per_rank = GLOBAL_BATCH // WORLD_SIZE
    for name, loss_fn in [("infonce", SymmetricInfoNCELoss(0.1)), ("ntxent", NTXentLoss(0.1))]:
        global_loss = loss_fn(z[0], z[1])
        (global_grad,) = torch.autograd.grad(global_loss, z[0])
        # Each rank scores its rows against the whole batch, so the mean over ranks is the
        # single-process loss, and each rank's gradient is world_size x its share of it.
        mean_loss = torch.stack([r[name] for r in ranks]).mean()
        torch.testing.assert_close(mean_loss, global_loss.detach())
        for rank, r in enumerate(ranks):
            rows = slice(rank * per_rank, (rank + 1) * per_rank)
            torch.testing.assert_close(r[f"{name}_grad"], WORLD_SIZE * global_grad[rows])
    # DeCUR averages the cross-correlation matrices, so every rank computes the same loss:
    # the reference built from the per-rank matrices (each standardised with local statistics).
    halves = [[t[r * per_rank : (r + 1) * per_rank].detach() for t in z] for r in range(2)]

    def mean_corr(i: int, j: int, cols: slice) -> Tensor:
        return torch.stack([ref_corr(h[i][:, cols], h[j][:, cols]) for h in halves]).mean(0)

    lam = 5e-3
    intra = ref_block_loss(mean_corr(0, 1, slice(None)), 1.0, lam) + ref_block_loss(
        mean_corr(2, 3, slice(None)), 1.0, lam
    )
    cross = (
        ref_block_loss(mean_corr(0, 2, slice(0, 2)), 1.0, lam)
        + ref_block_loss(mean_corr(0, 2, slice(2, None)), 0.0, lam)
    ) / 2
    for r in ranks:
        torch.testing.assert_close(r["decur"], (intra + cross) / 3)
