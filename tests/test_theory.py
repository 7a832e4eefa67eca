"""The theory lab: generators, CCA, probes, objectives, the two experiments' claims and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory import (
    LinearGaussianConfig,
    LinearSweep,
    MisalignmentConfig,
    MisalignmentSweep,
    TrainConfig,
    ViewConfig,
    build_objective,
    fit_cca,
    group_r2,
    kernel_probe_r2,
    linear_probe_r2,
    principal_angles_deg,
    run_linear_sweep,
    run_misalignment_sweep,
    sample_linear_gaussian,
    sample_misaligned,
    sample_misaligned_latents,
)
from eo_mmcl.theory.cli import parse_list, theory_app
from eo_mmcl.theory.data import linear_mixing
from eo_mmcl.theory.encoders import linear_encoder, mlp_encoder
from eo_mmcl.theory.linear import LinearResults
from eo_mmcl.theory.misaligned_data import misaligned_mixing, mix_misaligned
from eo_mmcl.theory.misalignment_section import misalignment_ranking

runner = CliRunner()

REQUIRED_COLUMNS = {
    "objective",
    "factor",
    "factor_group",
    "probe",
    "r2",
    "embedding_dim",
    "shared_dim",
    "unique_dim",
    "temperature",
}

#: The claim's bound: a trained clip encoder at dim(s) spans CCA's aligned subspace to within
#: this many degrees (measured: about 3 degrees at these sizes); a random encoder is > 60.
CCA_ANGLE_BOUND_DEG = 10.0


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


def test_linear_generator_is_the_stated_model() -> None:
    config = LinearGaussianConfig(noise_std=0.0, n_train=64, n_test=32, seed=3)
    data = sample_linear_gaussian(config)
    mixing = linear_mixing(config)
    s, u1, u2 = np.split(data.train.factors, [5, 10], axis=1)
    np.testing.assert_allclose(data.train.x1, np.hstack([s, u1]) @ mixing.a1.T, atol=1e-12)
    np.testing.assert_allclose(data.train.x2, np.hstack([s, u2]) @ mixing.a2.T, atol=1e-12)
    assert data.factor_groups == ("shared",) * 5 + ("unique1",) * 5 + ("unique2",) * 5
    again = sample_linear_gaussian(config)
    np.testing.assert_array_equal(data.test.x1, again.test.x1)


def test_linear_generator_variances() -> None:
    data = sample_linear_gaussian(LinearGaussianConfig(variance_ratio=4.0, n_train=20_000))
    variances = data.train.factors.var(axis=0)
    np.testing.assert_allclose(variances[:5], 1.0, atol=0.05)
    np.testing.assert_allclose(variances[5:], 4.0, atol=0.2)


def test_linear_generator_rejects_a_lossy_mixing() -> None:
    with pytest.raises(ConfigError, match="injective"):
        LinearGaussianConfig(shared_dim=5, unique_dim=5, observation_dim=8)


def test_misalignment_groups_follow_theta_and_rho() -> None:
    config = MisalignmentConfig(semantic_dim=10, theta_size=7, rho_size=2)
    assert config.theta == tuple(range(7))
    assert config.rho == (5, 6)
    groups = [config.semantic_group(i) for i in range(10)]
    assert groups == ["identified"] * 5 + ["perturbed"] * 2 + ["selection_biased"] * 3


def test_misaligned_latents_statistics() -> None:
    config = MisalignmentConfig(theta_size=7, rho_size=2, perturb_prob=0.3)
    latents = sample_misaligned_latents(config, 20_000, np.random.default_rng(0))
    rho, others = list(config.rho), [i for i in range(10) if i not in config.rho]
    # Perturbed factors: the stated fraction is resampled, so s_tilde keeps the N(0, 1) marginal
    # and correlates with s at 1 - p; nothing else is ever perturbed.
    np.testing.assert_allclose(latents.perturbed[:, rho].mean(axis=0), 0.3, atol=0.015)
    assert not latents.perturbed[:, others].any()
    np.testing.assert_array_equal(latents.s_tilde[:, others], latents.s[:, others])
    for i in rho:
        corr = np.corrcoef(latents.s[:, i], latents.s_tilde[:, i])[0, 1]
        assert corr == pytest.approx(0.7, abs=0.02)
        assert latents.s_tilde[:, i].var() == pytest.approx(1.0, abs=0.05)
        changed = latents.perturbed[:, i]
        assert np.all(latents.s_tilde[changed, i] != latents.s[changed, i])


def test_unseen_factors_never_reach_modality_2() -> None:
    config = MisalignmentConfig(theta_size=7, rho_size=2)
    mixing = misaligned_mixing(config)
    latents = sample_misaligned_latents(config, 256, np.random.default_rng(1))
    x1, x2 = mix_misaligned(latents, mixing, config)
    unseen = [7, 8, 9]
    s_changed = latents.s.copy()
    s_changed[:, unseen] = np.random.default_rng(2).standard_normal((256, 3))
    changed = type(latents)(
        s=s_changed,
        s_tilde=np.where(np.isin(np.arange(10), unseen), s_changed, latents.s_tilde),
        perturbed=latents.perturbed,
        m1=latents.m1,
        m2=latents.m2,
    )
    x1_changed, x2_changed = mix_misaligned(changed, mixing, config)
    np.testing.assert_array_equal(x2_changed, x2)  # selection bias: modality 2 is blind to them
    assert np.abs(x1_changed - x1).max() > 0.1  # modality 1 sees them


def test_misaligned_observations_carry_the_right_factors() -> None:
    data = sample_misaligned(
        MisalignmentConfig(theta_size=7, rho_size=2, perturb_prob=0.5, n_train=4096, n_test=2048)
    )
    # Probe the raw modality-2 observations: seen factors are there, unseen ones are not, and
    # the perturbed ones only in part (half the pairs carry an independent value).
    r2 = linear_probe_r2(data.train.x2, data.train.factors, data.test.x2, data.test.factors)
    assert r2[:5].min() > 0.3
    assert r2[7:10].max() < 0.01
    assert 0.1 < r2[5:7].mean() < 0.6
    # The generator standardises observations with the training statistics.
    np.testing.assert_allclose(data.train.x1.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(data.train.x1.std(axis=0), 1.0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# CCA, probes, objectives
# --------------------------------------------------------------------------------------------


def test_cca_finds_the_shared_directions() -> None:
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((5000, 2))
    x1 = np.hstack([shared, rng.standard_normal((5000, 3))]) @ rng.standard_normal((5, 5))
    x2 = np.hstack([shared + 0.1 * rng.standard_normal((5000, 2)), rng.standard_normal((5000, 2))])
    cca = fit_cca(x1, x2, 3)
    assert cca.correlations[:2] == pytest.approx([0.995, 0.995], abs=0.005)
    assert cca.correlations[2] < 0.1
    p1, _ = cca.transform(x1, x2)
    assert principal_angles_deg(p1[:, :2], shared).max() < 1.0
    assert principal_angles_deg(p1[:, 2:], shared).max() > 80.0


def test_probes_separate_linear_and_nonlinear_information() -> None:
    rng = np.random.default_rng(0)
    z = rng.uniform(-3, 3, size=(1200, 2))
    y = np.column_stack([z[:, 0] + 0.5 * z[:, 1], np.sin(2 * z[:, 0]), rng.standard_normal(1200)])
    linear = linear_probe_r2(z[:800], y[:800], z[800:], y[800:])
    kernel = kernel_probe_r2(z[:800], y[:800], z[800:], y[800:])
    assert linear[0] > 0.99 and linear[1] < 0.2 and abs(linear[2]) < 0.05
    assert kernel[1] > 0.9 and abs(kernel[2]) < 0.05


@pytest.mark.parametrize("name", ["clip", "cross_self", "coral"])
def test_objectives_train_every_encoder(name: str) -> None:
    torch.manual_seed(0)
    objective = build_objective(name, linear_encoder, (6, 4), 3, 0.1, ViewConfig())
    x1, x2 = torch.randn(16, 6), torch.randn(16, 4)
    loss = objective.loss(x1, x2, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    for param_name, param in objective.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    embeddings = objective.embed(x1, x2)
    assert embeddings["joint"].shape == (16, 9 if name == "coral" else 6)
    assert ("modality1" in embeddings) == (name != "coral")


def test_mlp_encoder_shape() -> None:
    assert mlp_encoder(7, 3)(torch.randn(5, 7)).shape == (5, 3)


def test_unknown_objective_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown objective"):
        build_objective("simclr", linear_encoder, (4, 4), 2, 0.1, ViewConfig())


# --------------------------------------------------------------------------------------------
# The linear-Gaussian claims
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_results() -> LinearResults:
    """Clip and cross_self at dim(s) = 5 and dim(s) + dim(u1) = 10, small and seeded (~5 s)."""
    sweep = LinearSweep(
        embedding_dims=(5, 10),
        variance_ratios=(1.0,),
        temperatures=(0.1,),
        objectives=("clip", "cross_self"),
        n_train=2048,
        n_test=1024,
        train=TrainConfig(steps=300, batch_size=128, lr=2e-2),
    )
    return run_linear_sweep(sweep)


def test_clip_at_shared_dim_keeps_s_and_drops_u1(linear_results: LinearResults) -> None:
    results = linear_results.results
    s = group_r2(results, "clip", "modality1", "shared", embedding_dim=5)
    u1 = group_r2(results, "clip", "modality1", "unique1", embedding_dim=5)
    assert s > 0.95
    assert u1 < 0.05
    # The floor: untrained encoders of the same size keep a good part of u1.
    assert group_r2(results, "random", "modality1", "unique1", embedding_dim=5) > 0.3


def test_cross_self_keeps_u1_where_clip_loses_it(linear_results: LinearResults) -> None:
    results = linear_results.results
    clip = group_r2(results, "clip", "modality1", "unique1", embedding_dim=10)
    cross_self = group_r2(results, "cross_self", "modality1", "unique1", embedding_dim=10)
    assert cross_self > 0.9
    assert cross_self > clip + 0.3


def test_trained_clip_spans_the_cca_subspace(linear_results: LinearResults) -> None:
    angles = linear_results.angles.set_index(["objective", "embedding_dim"])
    assert angles.loc[("clip", 5), "max_angle_deg"] < CCA_ANGLE_BOUND_DEG
    # The bound discriminates: a random linear encoder of the same size is far from it.
    assert angles.loc[("random", 5), "max_angle_deg"] > 6 * CCA_ANGLE_BOUND_DEG


def test_cca_baseline_keeps_exactly_the_shared_factors(linear_results: LinearResults) -> None:
    results = linear_results.results
    assert group_r2(results, "cca", "joint", "shared", embedding_dim=10) > 0.97
    assert group_r2(results, "cca", "joint", "unique1", embedding_dim=10) < 0.02
    assert results["factor_group"].unique().tolist() == ["shared", "unique1", "unique2"]


def test_linear_sweep_is_deterministic() -> None:
    sweep = LinearSweep(
        embedding_dims=(3,),
        variance_ratios=(1.0,),
        temperatures=(0.5,),
        objectives=("coral",),
        n_train=256,
        n_test=128,
        train=TrainConfig(steps=10, batch_size=64),
    )
    first, second = run_linear_sweep(sweep), run_linear_sweep(sweep)
    pd.testing.assert_frame_equal(first.results, second.results)


# --------------------------------------------------------------------------------------------
# The misalignment claim
# --------------------------------------------------------------------------------------------


def test_short_clip_training_ranks_groups_as_the_theory_predicts() -> None:
    # Output dim = number of unbiased factors (5 of 7 seen, 2 of those perturbed half the time).
    # A short training still holds part of the perturbed factors (they match in half of the
    # pairs), which is what puts them between the identified and the absent groups.
    sweep = MisalignmentSweep(
        theta_sizes=(7,),
        rho_sizes=(2,),
        perturb_probs=(0.5,),
        embedding_dims=(None,),
        temperatures=(0.1,),
        probes=("linear",),
        n_train=2048,
        n_test=1024,
        train=TrainConfig(steps=200, batch_size=256, lr=1e-3),
    )
    results = run_misalignment_sweep(sweep)
    assert set(results["embedding_dim"]) == {5}

    def r2(group: str) -> float:
        return group_r2(results, "clip", "modality1", group)

    absent = max(r2("selection_biased"), r2("modality_specific"))
    assert r2("identified") > r2("perturbed") + 0.2
    assert r2("perturbed") > absent + 0.05
    assert absent < 0.1
    ranking = misalignment_ranking(results)
    assert ranking["as_predicted"].tolist() == [True]


@pytest.mark.slow
def test_larger_embedding_or_lower_temperature_lets_perturbed_factors_leak() -> None:
    # Default sizes (~30 s): at dim = number of unbiased factors the perturbed factors are
    # discarded; with room to spare (dim 10) a low temperature keeps them, a high one does not.
    sweep = MisalignmentSweep(
        theta_sizes=(7,),
        rho_sizes=(2,),
        embedding_dims=(None, 10),
        temperatures=(0.1, 1.0),
        probes=("linear",),
    )
    results = run_misalignment_sweep(sweep)

    def r2(group: str, dim: int, temperature: float) -> float:
        return group_r2(
            results, "clip", "modality1", group, embedding_dim=dim, temperature=temperature
        )

    assert r2("identified", 5, 0.1) > 0.6
    assert r2("perturbed", 5, 0.1) < 0.1
    assert r2("perturbed", 10, 0.1) > 0.5
    assert r2("perturbed", 10, 1.0) < 0.2
    assert r2("selection_biased", 10, 0.1) < 0.1


def test_misalignment_sweep_grid() -> None:
    sweep = MisalignmentSweep(
        theta_sizes=(10, 3), rho_sizes=(0, 4), perturb_probs=(0.2, 0.5), embedding_dims=(None, 6)
    )
    assert sweep.data_points() == [(10, 0, 0.2), (10, 4, 0.2), (10, 4, 0.5), (3, 0, 0.2)]
    assert sweep.skipped() == [(3, 4)]
    assert sweep.resolved_dims(6) == [6]
    with pytest.raises(ConfigError, match="no valid"):
        MisalignmentSweep(theta_sizes=(2,), rho_sizes=(2,))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def test_parse_list_accepts_commas_and_repeats() -> None:
    assert parse_list(["5,10", "20"], int, (1,), "--dims") == (5, 10, 20)
    assert parse_list(None, int, (1,), "--dims") == (1,)


def test_cli_linear_writes_outputs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "linear"
    args = [
        "linear",
        "-o",
        str(out),
        "--embedding-dims",
        "3",
        "--temperatures",
        "0.1,1",
        "--variance-ratios",
        "1",
        "--objectives",
        "clip",
        "--n-train",
        "256",
        "--n-test",
        "128",
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--quiet",
    ]
    result = runner.invoke(theory_app, args)
    assert result.exit_code == 0, result.output
    assert "runs=2" in result.output and "reused=false" in result.output
    assert "clip_r2_s_at_dim_s" not in result.output  # dim(s) = 5 is not in this grid
    table = pd.read_csv(out / "results.csv")
    assert set(table.columns) >= REQUIRED_COLUMNS
    assert set(table["factor_group"]) == {"shared", "unique1", "unique2"}
    assert set(table["objective"]) == {"cca", "random", "clip"}
    for name in ("section.md", "linear_r2.png", "linear_cca_angles.png", "cca_angles.csv"):
        assert (out / name).stat().st_size > 0, name
    assert "| objective |" in (out / "section.md").read_text(encoding="utf-8")
    manifest = json.loads((out / "theory_manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["temperatures"] == [0.1, 1.0]
    again = runner.invoke(theory_app, args)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output and "reused=true" in again.output


def test_cli_identifiability_writes_outputs_and_the_old_name_still_works(tmp_path: Path) -> None:
    out = tmp_path / "mis"
    args = [
        "--output",
        str(out),
        "--theta-sizes",
        "7",
        "--rho-sizes",
        "2",
        "--embedding-dims",
        "auto",
        "--temperatures",
        "0.1",
        "--probes",
        "linear",
        "--n-train",
        "512",
        "--n-test",
        "256",
        "--steps",
        "5",
        "--quiet",
    ]
    result = runner.invoke(theory_app, ["identifiability", *args])
    assert result.exit_code == 0, result.output
    assert "as_predicted=" in result.output
    assert "deprecated" not in result.output
    table = pd.read_csv(out / "results.csv")
    assert set(table.columns) >= REQUIRED_COLUMNS
    assert {"theta_size", "rho_size", "perturb_prob"} <= set(table.columns)
    assert set(table["factor_group"]) == {
        "identified",
        "selection_biased",
        "perturbed",
        "modality_specific",
    }
    assert (out / "misalignment_r2.png").stat().st_size > 0
    assert "## Theory lab" in (out / "section.md").read_text(encoding="utf-8")
    # The name it had before (shared with `study misalignment`) is a hidden, deprecated alias.
    old = runner.invoke(theory_app, ["misalignment", *args])
    assert old.exit_code == 0, old.output
    assert "deprecated: `misalignment` is now `theory identifiability`" in old.output
    assert "reused=true" in old.output
    listing = runner.invoke(theory_app, ["--help"]).output
    assert "identifiability" in listing and "misalignment " not in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--observation-dim", "4"], "injective"),
        (["--objectives", "simclr"], "unknown objectives"),
        (["--embedding-dims", "five"], "--embedding-dims"),
    ],
)
def test_cli_rejects_bad_settings(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(theory_app, ["linear", "-o", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "results.csv").exists()
