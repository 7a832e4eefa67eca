"""The misalignment experiment's Markdown section: summary table, ranking and findings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eo_mmcl.theory import misalignment

#: Setting columns of the linear summary, before constant ones are dropped.
from eo_mmcl.theory.section import (
    markdown_table,
    mean_r2,
    settings_text,
    sorted_summary,
    varying_columns,
)
from eo_mmcl.theory.summary import group_means, summary_rows

#: Setting columns of the misalignment summary, before constant ones are dropped.
MISALIGNMENT_INDEX: tuple[str, ...] = (
    "theta_size",
    "rho_size",
    "perturb_prob",
    "objective",
    "embedding_dim",
    "temperature",
    "probe",
)


def misalignment_summary(results: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Mean probe R^2 per factor group of the modality-1 embedding, per setting and probe.

    Args:
        results: The misalignment experiment's tidy table.

    Returns:
        Header and rows (settings that never vary are left out).
    """
    index = varying_columns(
        results, MISALIGNMENT_INDEX, keep=("theta_size", "rho_size", "objective", "probe")
    )
    summary = sorted_summary(group_means(results, index, misalignment.GROUPS), index)
    return summary_rows(summary, index, misalignment.GROUPS)


def misalignment_ranking(results: pd.DataFrame) -> pd.DataFrame:
    """Group means of trained runs at embedding dimension = number of unbiased factors.

    That is the theory's setting; only grid points with all four groups are ranked. Two
    checks: ``identified_first`` (identified above every other group, the theory's claim) and
    ``perturbed_above_absent`` (perturbed above selection-biased and modality-specific, which
    holds while training has not yet discarded the perturbed factors completely: at
    convergence all three are about 0 and their order is noise). ``as_predicted`` is both, the
    full ranking identified > perturbed > selection-biased, modality-specific.

    Args:
        results: The misalignment tidy table.

    Returns:
        One row per (grid point, temperature, probe).
    """
    trained = results[
        (results["objective"] == "clip") & (results["embedding_dim"] == results["unbiased_size"])
    ]
    keys = ["theta_size", "rho_size", "perturb_prob", "temperature", "probe"]
    rows: list[dict[str, Any]] = []
    for values, at in trained.groupby(keys, sort=False):
        means = {g: mean_r2(at, factor_group=g) for g in misalignment.GROUPS}
        if any(math.isnan(v) for v in means.values()):
            continue
        absent = max(means["selection_biased"], means["modality_specific"])
        identified_first = means["identified"] > max(means["perturbed"], absent)
        perturbed_above_absent = means["perturbed"] > absent
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "embedding_dim": int(at["embedding_dim"].iloc[0]),
                **means,
                "identified_first": bool(identified_first),
                "perturbed_above_absent": bool(perturbed_above_absent),
                "as_predicted": bool(identified_first and perturbed_above_absent),
            }
        )
    return pd.DataFrame.from_records(rows)


def misalignment_findings(ranking: pd.DataFrame) -> list[str]:
    """Markdown bullets stating :func:`misalignment_ranking`.

    Args:
        ranking: Output of :func:`misalignment_ranking`.

    Returns:
        One bullet per row.
    """

    def yes_no(flag: bool) -> str:
        return "yes" if flag else "**no**"

    return [
        f"- |Iθ|={row['theta_size']}, |Iρ|={row['rho_size']}, p={row['perturb_prob']:g}, "
        f"T={row['temperature']:g}, {row['probe']} probe, dim={row['embedding_dim']}: "
        f"identified {row['identified']:.2f}, perturbed {row['perturbed']:.2f}, "
        f"selection-biased {row['selection_biased']:.2f}, modality-specific "
        f"{row['modality_specific']:.2f}; identified first: "
        f"{yes_no(row['identified_first'])}; perturbed above the absent groups: "
        f"{yes_no(row['perturbed_above_absent'])}."
        for _, row in ranking.iterrows()
    ]


def misalignment_section(
    results: pd.DataFrame,
    settings: Mapping[str, Any],
    figures: Sequence[Path],
) -> str:
    """The Markdown section of the misalignment experiment.

    Args:
        results: The tidy table.
        settings: The sweep's settings (``MisalignmentSweep.settings()``).
        figures: Figure files, linked by name.

    Returns:
        The section text.
    """
    header, rows = misalignment_summary(results)
    train = settings["train"]
    fixed = settings_text(
        settings, ["semantic_dim", "specific_dim", "n_train", "n_test", "hidden_dim", "seeds"]
    )
    findings = misalignment_findings(misalignment_ranking(results))
    parts = [
        "## Theory lab: what alignment keeps under misalignment\n",
        "Semantic factors s and modality-specific factors m1, m2; modality 2 sees only the "
        "factors in I_θ (selection bias), and those in I_ρ ⊂ I_θ reach it resampled with "
        "probability p (perturbation bias); both modalities are invertible random MLP mixtures "
        "of their latents. MLP encoders are trained with the project's `clip` loss; `random` "
        "is the untrained floor. The modality-1 embedding (modality 1 sees every factor) is "
        "probed linearly (ridge) and nonlinearly (RBF kernel ridge). Theory (Cai et al., "
        "2025): R² about 1 for the identified factors (I_θ minus I_ρ), about 0 for the rest, "
        "when the embedding dimension equals the number of identified factors; a larger "
        "embedding or a lower temperature can let perturbed factors leak.\n",
        f"Settings: {fixed}; training: {train['steps']} Adam steps, batch "
        f"{train['batch_size']}, lr {train['lr']}.\n",
        "Mean held-out probe R² per factor group:\n",
        markdown_table(header, rows),
        "Ranking at embedding dimension = number of identified factors (the theory predicts "
        "identified first; perturbed factors sit above the absent groups only while training "
        "has not discarded them completely):\n",
        ("\n".join(findings) if findings else "- no grid point has all four groups") + "\n",
        *(f"![{f.stem}]({f.name})\n" for f in figures),
    ]
    return "\n".join(parts)
