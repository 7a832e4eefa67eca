"""The linear-Gaussian experiment: what alignment keeps of shared and unique factors.

Under linear encoders and Gaussian data, aligning two modalities keeps the subspace that
correlates across them (CCA's aligned subspace) and, at an embedding dimension equal to
``dim(s)``, discards the unique factors (Thoreau, Levillain and Derksen, 2025). The sweep
trains linear encoders with ``clip``, ``cross_self`` and ``coral`` over embedding dimension,
unique-to-shared variance ratio, noise level and temperature, and probes every embedding for
every factor. Two baselines need no training: ``cca`` (the closed-form limit, its aligned
subspace of dimension ``min(k, dim(s))``) and ``random`` (untrained encoders, the floor).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.cca import fit_cca, principal_angles_deg
from eo_mmcl.theory.data import (
    FloatArray,
    LatentDataset,
    LinearGaussianConfig,
    sample_linear_gaussian,
)
from eo_mmcl.theory.encoders import linear_encoder
from eo_mmcl.theory.objectives import (
    JOINT,
    MODALITY1,
    MODALITY2,
    OBJECTIVES,
    build_objective,
)
from eo_mmcl.theory.probes import LINEAR_PROBE, linear_probe_r2
from eo_mmcl.theory.summary import probe_records, tidy_frame
from eo_mmcl.theory.training import (
    TrainConfig,
    embed_split,
    seeded_init,
    torch_threads,
    train_objective,
)
from eo_mmcl.theory.views import ViewConfig

EXPERIMENT: Final = "linear"

#: Factor groups of this experiment, in display order.
GROUPS: Final[tuple[str, ...]] = ("shared", "unique1", "unique2")

#: Setting columns of this experiment beyond the base columns.
SETTING_COLUMNS: Final[tuple[str, ...]] = ("observation_dim", "variance_ratio", "noise_std")

#: Baselines that need no training.
CCA, RANDOM = "cca", "random"


@dataclass(frozen=True)
class LinearSweep:
    """The grid of the linear experiment: the product of every list below, for every seed.

    Args:
        embedding_dims: Output dimensions of each encoder.
        variance_ratios: Unique-to-shared variance ratios.
        noise_stds: Observation noise levels.
        temperatures: Temperatures of the contrastive losses.
        objectives: Objectives to train (see `eo_mmcl.theory.objectives.OBJECTIVES`).
        seeds: Seeds; each seed draws new data, mixing and initialisation.
        shared_dim: Dimension of ``s``.
        unique_dim: Dimension of ``u1`` and ``u2``.
        observation_dim: Dimension of ``x1`` and ``x2``.
        n_train: Training pairs.
        n_test: Held-out pairs.
        train: Optimiser settings (its seed is replaced by each sweep seed).
        views: Views of ``cross_self`` and ``coral``.

    Raises:
        ConfigError: If a list is empty, a dimension or temperature is not positive, or an
            objective is unknown.
    """

    embedding_dims: tuple[int, ...] = (5, 10, 20)
    variance_ratios: tuple[float, ...] = (1.0, 4.0)
    noise_stds: tuple[float, ...] = (0.1,)
    temperatures: tuple[float, ...] = (0.1, 1.0)
    objectives: tuple[str, ...] = OBJECTIVES
    seeds: tuple[int, ...] = (0,)
    shared_dim: int = 5
    unique_dim: int = 5
    observation_dim: int = 20
    n_train: int = 4096
    n_test: int = 2048
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=400, batch_size=128, lr=2e-2)
    )
    views: ViewConfig = field(default_factory=ViewConfig)

    def __post_init__(self) -> None:
        for name in ("embedding_dims", "variance_ratios", "noise_stds", "temperatures", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"{name} must not be empty")
        if any(k < 1 for k in self.embedding_dims):
            raise ConfigError(f"embedding_dims must be >= 1, got {self.embedding_dims}")
        if any(not math.isfinite(t) or t <= 0 for t in self.temperatures):
            raise ConfigError(f"temperatures must be > 0, got {self.temperatures}")
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown:
            raise ConfigError(f"unknown objectives {unknown}; choose from {', '.join(OBJECTIVES)}")
        # Validate every data grid point before any training starts.
        for ratio, noise in itertools.product(self.variance_ratios, self.noise_stds):
            self.data_config(self.seeds[0], ratio, noise)

    def data_config(
        self, seed: int, variance_ratio: float, noise_std: float
    ) -> LinearGaussianConfig:
        """Data knobs of one grid point.

        Args:
            seed: Seed.
            variance_ratio: Unique-to-shared variance ratio.
            noise_std: Observation noise.

        Returns:
            The generator config.
        """
        return LinearGaussianConfig(
            shared_dim=self.shared_dim,
            unique_dim=self.unique_dim,
            observation_dim=self.observation_dim,
            variance_ratio=variance_ratio,
            noise_std=noise_std,
            n_train=self.n_train,
            n_test=self.n_test,
            seed=seed,
        )

    def settings(self) -> dict[str, Any]:
        """Every knob, JSON-serialisable, to record beside the results.

        Returns:
            The settings.
        """
        return {"experiment": EXPERIMENT, **asdict(self)}

    @property
    def n_runs(self) -> int:
        """Number of trainings in the grid."""
        return (
            len(self.seeds)
            * len(self.variance_ratios)
            * len(self.noise_stds)
            * len(self.embedding_dims)
            * len(self.temperatures)
            * len(self.objectives)
        )


@dataclass(frozen=True)
class LinearResults:
    """Outputs of the linear sweep.

    Args:
        results: The tidy table, one row per (setting, objective, embedding, factor).
        angles: Principal angles between each two-tower objective's modality-1 embedding and
            CCA's aligned subspace, one row per (setting, objective).
    """

    results: pd.DataFrame
    angles: pd.DataFrame


def _probe_all(
    train_emb: dict[str, FloatArray],
    test_emb: dict[str, FloatArray],
    data: LatentDataset,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Linear-probe every embedding of one model for every factor.

    Args:
        train_emb: Training-split embeddings by name.
        test_emb: Test-split embeddings by name.
        data: The data (factors and their names and groups).
        **settings: Setting columns of the rows.

    Returns:
        One row per (embedding, factor).
    """
    records: list[dict[str, Any]] = []
    for name in (MODALITY1, MODALITY2, JOINT):
        if name not in train_emb:
            continue
        r2 = linear_probe_r2(train_emb[name], data.train.factors, test_emb[name], data.test.factors)
        records += probe_records(
            r2,
            data.factor_names,
            data.factor_groups,
            embedding=name,
            probe=LINEAR_PROBE,
            probe_input_dim=train_emb[name].shape[1],
            **settings,
        )
    return records


def _train_and_probe(
    sweep: LinearSweep,
    name: str,
    temperature: float,
    data: LatentDataset,
    common: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, FloatArray], float]:
    """Build (and unless ``random``, train) one objective, then probe its embeddings.

    Args:
        sweep: The grid (encoders, views, optimiser).
        name: Objective name or ``random``.
        temperature: Loss temperature (NaN for ``random``).
        data: The grid point's data.
        common: Setting columns of the rows, including ``seed`` and ``embedding_dim``.

    Returns:
        The probe rows, the test embeddings and the training wall time.
    """
    seed, k = common["seed"], common["embedding_dim"]
    with seeded_init(seed):
        objective = build_objective(
            "clip" if name == RANDOM else name,  # the random floor is an untrained ``clip`` model
            linear_encoder,
            (sweep.observation_dim, sweep.observation_dim),
            k,
            1.0 if name == RANDOM else temperature,
            sweep.views,
        )
    run: dict[str, Any] = {"steps": 0, "final_loss": math.nan}
    seconds = 0.0
    if name != RANDOM:
        train = replace(sweep.train, seed=seed)
        result = train_objective(objective, data.train.x1, data.train.x2, train)
        run = {"steps": train.steps, "final_loss": result.final_loss}
        seconds = result.seconds
    train_emb = embed_split(objective, data.train.x1, data.train.x2)
    test_emb = embed_split(objective, data.test.x1, data.test.x2)
    records = _probe_all(
        train_emb, test_emb, data, **common, objective=name, temperature=temperature, **run
    )
    return records, test_emb, seconds


def run_linear_sweep(
    sweep: LinearSweep, on_run: Callable[[str], None] | None = None
) -> LinearResults:
    """Run the linear-Gaussian experiment over its grid.

    Per data grid point (seed, variance ratio, noise), CCA is fitted once; per embedding
    dimension, the ``cca`` and ``random`` baselines are probed and every objective is trained
    at every temperature.

    Args:
        sweep: The grid and fixed knobs.
        on_run: Called with a one-line description after each training (progress).

    Returns:
        The tidy results and the principal-angle table.
    """
    records: list[dict[str, Any]] = []
    angles: list[dict[str, Any]] = []
    dims = list(dict.fromkeys(sweep.embedding_dims))  # drop repeats, keep the order
    runs: list[tuple[str, float]] = [(RANDOM, math.nan)] + [
        (name, t) for t in sweep.temperatures for name in sweep.objectives
    ]
    with torch_threads(1):
        for seed, ratio, noise in itertools.product(
            sweep.seeds, sweep.variance_ratios, sweep.noise_stds
        ):
            data = sample_linear_gaussian(sweep.data_config(seed, ratio, noise))
            cca = fit_cca(data.train.x1, data.train.x2, sweep.shared_dim)
            cca_train = cca.transform(data.train.x1, data.train.x2)
            cca_test = cca.transform(data.test.x1, data.test.x2)
            for k in dims:
                common: dict[str, Any] = {
                    "experiment": EXPERIMENT,
                    "embedding_dim": k,
                    "shared_dim": sweep.shared_dim,
                    "unique_dim": sweep.unique_dim,
                    "observation_dim": sweep.observation_dim,
                    "variance_ratio": ratio,
                    "noise_std": noise,
                    "seed": seed,
                }
                aligned = min(k, sweep.shared_dim)
                records += _probe_all(
                    _cca_embeddings(cca_train, aligned),
                    _cca_embeddings(cca_test, aligned),
                    data,
                    objective=CCA,
                    temperature=math.nan,
                    **common,
                )
                for name, temperature in runs:
                    rows, test_emb, seconds = _train_and_probe(
                        sweep, name, temperature, data, common
                    )
                    records += rows
                    if MODALITY1 in test_emb:
                        theta = principal_angles_deg(test_emb[MODALITY1], cca_test[0][:, :aligned])
                        angles.append(
                            {
                                **{c: v for c, v in rows[0].items() if c not in _FACTOR_COLUMNS},
                                "aligned_dim": aligned,
                                "max_angle_deg": float(theta.max()),
                                "mean_angle_deg": float(theta.mean()),
                                "cca_min_correlation": float(cca.correlations[:aligned].min()),
                            }
                        )
                    if on_run is not None and name != RANDOM:
                        on_run(
                            f"linear seed={seed} variance_ratio={ratio:g} noise_std={noise:g} "
                            f"embedding_dim={k} temperature={temperature:g} objective={name} "
                            f"seconds={seconds:.1f}"
                        )
    return LinearResults(
        results=tidy_frame(records, SETTING_COLUMNS), angles=pd.DataFrame.from_records(angles)
    )


#: Per-factor columns of a probe row, left out of the (per-model) angle table.
_FACTOR_COLUMNS: Final = frozenset(
    {"embedding", "probe", "probe_input_dim", "factor", "factor_group", "r2"}
)


def _cca_embeddings(
    projections: tuple[FloatArray, FloatArray], aligned: int
) -> dict[str, FloatArray]:
    """CCA's aligned-subspace projections, arranged like a two-tower model's embeddings.

    Args:
        projections: Both modalities' canonical projections, (n, k) each.
        aligned: How many leading canonical directions to keep.

    Returns:
        ``modality1``, ``modality2`` and ``joint`` embeddings.
    """
    p1, p2 = projections[0][:, :aligned], projections[1][:, :aligned]
    return {MODALITY1: p1, MODALITY2: p2, JOINT: np.concatenate([p1, p2], axis=1)}
