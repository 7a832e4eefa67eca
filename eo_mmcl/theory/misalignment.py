"""The misalignment experiment: which semantic factors contrastive alignment identifies.

With misaligned pairs, contrastive learning identifies exactly the semantic factors that are
neither missing from one modality (selection bias) nor perturbed between them (perturbation
bias) (Cai et al., 2025). The sweep draws data from
`eo_mmcl.theory.misaligned_data.sample_misaligned` over ``|I_theta|``, ``|I_rho|`` and the
perturbation probability, trains MLP encoders with the project's ``clip`` loss over embedding
dimension and temperature, and probes the modality-1 embedding (modality 1 sees every factor)
for every semantic and modality-specific factor with a linear and a kernel probe. Untrained
encoders (``random``) give the floor.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.data import LatentDataset
from eo_mmcl.theory.encoders import mlp_encoder
from eo_mmcl.theory.misaligned_data import MisalignmentConfig, sample_misaligned
from eo_mmcl.theory.objectives import MODALITY1, build_objective
from eo_mmcl.theory.probes import PROBES, probe_r2
from eo_mmcl.theory.summary import probe_records, tidy_frame
from eo_mmcl.theory.training import (
    TrainConfig,
    embed_split,
    seeded_init,
    torch_threads,
    train_objective,
)
from eo_mmcl.theory.views import ViewConfig

EXPERIMENT: Final = "misalignment"

#: Factor groups of this experiment, in the order the theory ranks them.
GROUPS: Final[tuple[str, ...]] = (
    "identified",
    "perturbed",
    "selection_biased",
    "modality_specific",
)

#: Setting columns of this experiment beyond the base columns.
SETTING_COLUMNS: Final[tuple[str, ...]] = (
    "theta_size",
    "rho_size",
    "unbiased_size",
    "perturb_prob",
)

#: The trained objective and the untrained floor.
CLIP, RANDOM = "clip", "random"


@dataclass(frozen=True)
class MisalignmentSweep:
    """The grid of the misalignment experiment.

    Data grid points are the valid combinations (``rho < theta``) of ``theta_sizes``,
    ``rho_sizes`` and ``perturb_probs`` (one probability only when ``rho = 0``, where it has no
    effect); for each, every embedding dimension and temperature is trained.

    Args:
        theta_sizes: Values of ``|I_theta|`` (semantic factors modality 2 sees).
        rho_sizes: Values of ``|I_rho|`` (of those, factors reaching modality 2 perturbed).
        perturb_probs: Probabilities that a factor of ``I_rho`` is perturbed in a pair.
        embedding_dims: Encoder output dimensions; ``None`` means the number of unbiased
            factors ``|I_theta| - |I_rho|`` of each grid point, the theory's setting.
        temperatures: InfoNCE temperatures.
        probes: Probes to run (see `eo_mmcl.theory.probes.PROBES`).
        seeds: Seeds; each draws new data, mixing and initialisation.
        semantic_dim: Dimension of ``s``.
        specific_dim: Dimension of ``m1`` and ``m2``.
        n_train: Training pairs.
        n_test: Held-out pairs.
        hidden_dim: Width of the MLP encoders.
        train: Optimiser settings (its seed is replaced by each sweep seed).

    Raises:
        ConfigError: If a list is empty, a value is out of range, a probe is unknown or no
            ``(theta, rho)`` combination is valid.
    """

    theta_sizes: tuple[int, ...] = (10, 7)
    rho_sizes: tuple[int, ...] = (0, 2)
    perturb_probs: tuple[float, ...] = (0.5,)
    embedding_dims: tuple[int | None, ...] = (None, 10)
    temperatures: tuple[float, ...] = (0.1, 1.0)
    probes: tuple[str, ...] = PROBES
    seeds: tuple[int, ...] = (0,)
    semantic_dim: int = 10
    specific_dim: int = 5
    n_train: int = 8192
    n_test: int = 2048
    hidden_dim: int = 128
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1000, batch_size=256, lr=1e-3)
    )

    def __post_init__(self) -> None:
        for name in (
            "theta_sizes",
            "rho_sizes",
            "perturb_probs",
            "embedding_dims",
            "temperatures",
            "probes",
            "seeds",
        ):
            if not getattr(self, name):
                raise ConfigError(f"{name} must not be empty")
        if any(k is not None and k < 1 for k in self.embedding_dims):
            raise ConfigError(f"embedding_dims must be >= 1, got {self.embedding_dims}")
        if any(not math.isfinite(t) or t <= 0 for t in self.temperatures):
            raise ConfigError(f"temperatures must be > 0, got {self.temperatures}")
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise ConfigError(f"unknown probes {unknown}; choose from {', '.join(PROBES)}")
        if self.hidden_dim < 1:
            raise ConfigError(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        if not self.data_points():
            raise ConfigError(
                f"no valid (theta, rho) combination in theta_sizes={self.theta_sizes}, "
                f"rho_sizes={self.rho_sizes}: need rho < theta <= semantic_dim"
            )
        for theta, rho, prob in self.data_points():
            self.data_config(self.seeds[0], theta, rho, prob)  # validates the data knobs

    def data_points(self) -> list[tuple[int, int, float]]:
        """Valid ``(theta_size, rho_size, perturb_prob)`` combinations, in grid order.

        Returns:
            The combinations; with ``rho_size == 0`` only the first probability is kept.
        """
        points: list[tuple[int, int, float]] = []
        for theta, rho, prob in itertools.product(
            self.theta_sizes, self.rho_sizes, self.perturb_probs
        ):
            if not 0 <= rho < theta <= self.semantic_dim:
                continue
            if rho == 0 and prob != self.perturb_probs[0]:
                continue
            points.append((theta, rho, prob))
        return list(dict.fromkeys(points))

    def skipped(self) -> list[tuple[int, int]]:
        """``(theta, rho)`` combinations of the grid left out as invalid.

        Returns:
            The combinations.
        """
        return [
            (theta, rho)
            for theta, rho in itertools.product(self.theta_sizes, self.rho_sizes)
            if not 0 <= rho < theta <= self.semantic_dim
        ]

    def resolved_dims(self, unbiased_size: int) -> list[int]:
        """Embedding dimensions of one grid point, ``None`` resolved, repeats dropped.

        Args:
            unbiased_size: Number of unbiased factors of the grid point.

        Returns:
            The dimensions.
        """
        return list(dict.fromkeys(unbiased_size if k is None else k for k in self.embedding_dims))

    def data_config(self, seed: int, theta: int, rho: int, prob: float) -> MisalignmentConfig:
        """Data knobs of one grid point.

        Args:
            seed: Seed.
            theta: ``|I_theta|``.
            rho: ``|I_rho|``.
            prob: Perturbation probability.

        Returns:
            The generator config.
        """
        return MisalignmentConfig(
            semantic_dim=self.semantic_dim,
            specific_dim=self.specific_dim,
            theta_size=theta,
            rho_size=rho,
            perturb_prob=prob,
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
        per_seed = sum(
            len(self.resolved_dims(theta - rho)) * len(self.temperatures)
            for theta, rho, _ in self.data_points()
        )
        return per_seed * len(self.seeds)


def _train_and_probe(
    sweep: MisalignmentSweep,
    name: str,
    temperature: float,
    data: LatentDataset,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], float]:
    """Build (and unless ``random``, train) a ``clip`` model, then probe its modality-1 embedding.

    Args:
        sweep: The grid (encoder width, optimiser, probes).
        name: ``clip`` or ``random``.
        temperature: InfoNCE temperature (NaN for ``random``).
        data: The grid point's data.
        settings: Setting columns of the rows, including ``seed`` and ``embedding_dim``.

    Returns:
        The probe rows and the training wall time.
    """
    seed, k = settings["seed"], settings["embedding_dim"]
    with seeded_init(seed):
        objective = build_objective(
            CLIP,
            functools.partial(mlp_encoder, hidden_dim=sweep.hidden_dim),
            (data.train.x1.shape[1], data.train.x2.shape[1]),
            k,
            1.0 if name == RANDOM else temperature,
            ViewConfig(),  # unused: ``clip`` sees clean pairs
        )
    run: dict[str, Any] = {"steps": 0, "final_loss": math.nan}
    seconds = 0.0
    if name != RANDOM:
        train = replace(sweep.train, seed=seed)
        result = train_objective(objective, data.train.x1, data.train.x2, train)
        run = {"steps": train.steps, "final_loss": result.final_loss}
        seconds = result.seconds
    train_z = embed_split(objective, data.train.x1, data.train.x2)[MODALITY1]
    test_z = embed_split(objective, data.test.x1, data.test.x2)[MODALITY1]
    records: list[dict[str, Any]] = []
    for probe in sweep.probes:
        r2 = probe_r2(probe, train_z, data.train.factors, test_z, data.test.factors)
        records += probe_records(
            r2,
            data.factor_names,
            data.factor_groups,
            **settings,
            objective=name,
            temperature=temperature,
            embedding=MODALITY1,
            probe=probe,
            probe_input_dim=k,
            **run,
        )
    return records, seconds


def run_misalignment_sweep(
    sweep: MisalignmentSweep, on_run: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Run the misalignment experiment over its grid.

    Per data grid point and embedding dimension, the ``random`` floor is probed and ``clip``
    is trained at every temperature.

    Args:
        sweep: The grid and fixed knobs.
        on_run: Called with a one-line description after each training (progress).

    Returns:
        The tidy results table.
    """
    records: list[dict[str, Any]] = []
    runs: list[tuple[str, float]] = [(RANDOM, math.nan)] + [(CLIP, t) for t in sweep.temperatures]
    with torch_threads(1):
        for seed, (theta, rho, prob) in itertools.product(sweep.seeds, sweep.data_points()):
            config = sweep.data_config(seed, theta, rho, prob)
            data = sample_misaligned(config)
            for k in sweep.resolved_dims(config.unbiased_size):
                settings: dict[str, Any] = {
                    "experiment": EXPERIMENT,
                    "embedding_dim": k,
                    "shared_dim": sweep.semantic_dim,
                    "unique_dim": sweep.specific_dim,
                    "seed": seed,
                    "theta_size": theta,
                    "rho_size": rho,
                    "unbiased_size": config.unbiased_size,
                    "perturb_prob": prob,
                }
                for name, temperature in runs:
                    rows, seconds = _train_and_probe(sweep, name, temperature, data, settings)
                    records += rows
                    if on_run is not None and name != RANDOM:
                        on_run(
                            f"misalignment seed={seed} theta_size={theta} rho_size={rho} "
                            f"perturb_prob={prob:g} embedding_dim={k} "
                            f"temperature={temperature:g} seconds={seconds:.1f}"
                        )
    return tidy_frame(records, SETTING_COLUMNS)
