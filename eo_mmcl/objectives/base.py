"""The base LightningModule of every objective: models, losses, views, logging, checkpoints."""

from __future__ import annotations

import os
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from lightly.utils.debug import std_of_l2_normalized
from lightning import LightningModule
from torch import Tensor

from eo_mmcl import __version__
from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.errors import ConfigError
from eo_mmcl.losses import LossOutput
from eo_mmcl.models import (
    BackboneFeatures,
    PairedEncoder,
    ProjectionHead,
    build_paired_encoder,
)
from eo_mmcl.objectives.plain import plain
from eo_mmcl.objectives.rng import RNG_KEY, capture_rng, restore_rng
from eo_mmcl.objectives.views import PairedViews

#: Embedding keys that need one sensor's backbone alone (predicting them skips the other).
SINGLE_SENSOR_KEYS = ("s1", "s2")


@dataclass(frozen=True)
class PredictOutputs:
    """What :meth:`Objective.predict_step` returns: the embedding runner sets it.

    Args:
        keys: Embedding keys to return (None: every key of :meth:`Objective.embed`); a
            key the objective does not produce is left out. Keys that need one sensor alone
            (``s1``, ``s2``) run only that sensor's backbone when nothing else is asked for.
        dense: Also return each sensor's last backbone feature maps (``dense_s1``,
            ``dense_s2``, (B, C, h, w)) from the same pass.
    """

    keys: tuple[str, ...] | None = None
    dense: bool = False


class Objective(LightningModule):
    """One training objective over paired S1/S2 batches (torchgeo's BaseTask pattern).

    Subclasses set :attr:`objective` and implement :meth:`configure_losses` and
    :meth:`compute_loss`, and extend :meth:`configure_models` and :meth:`embed_features`.
    Frozen embeddings come from Lightning's predict loop (:meth:`predict_step`, what
    :attr:`predict_outputs` asks for), for chips and export windows alike. Batches arrive
    normalised (and, in training, paired-augmented) from the datamodule; objectives that need
    two views draw them here with :class:`PairedViews`, on the device.

    Every step logs the loss, its terms and a collapse monitor: the standard deviation of the
    L2-normalised embeddings over the batch (about ``1/sqrt(dim)`` when healthy, 0 when
    collapsed). A non-finite loss stops training with an error naming the objective and step.
    Checkpoints keep the hyperparameters (Lightning), the band lists and the normalisation
    statistics of the chip store, so later stages need nothing else.

    Args:
        backbone: timm model name for both sensors.
        output_stride: timm ``output_stride`` (e.g. 16 for more tokens on small chips).
        backbone_kwargs: Further ``timm.create_model`` arguments for both backbones, for
            example ``{"channels": [32, 64, 128, 256], "stem_width": 32}`` for a half-width
            ResNet that trains on a laptop CPU.
        proj_dim: Width of the projection (loss) space.
        proj_hidden_dim: Hidden width of the projection heads.
        temperature: Temperature of the contrastive terms.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        crop_scale: Area range of the views' random resized crops.
        noise_std: Additive noise of the views (normalised units).
        gain_std: Per-band gain jitter of the views.
        s1_channels: Sentinel-1 bands.
        s2_channels: Sentinel-2 bands.
        gather_distributed: Under DDP, gather the other processes' embeddings as negatives
            (the contrastive and Barlow terms then see the global batch).
        channels_last: Train in channels-last memory layout: oneDNN's and cuDNN's faster
            convolution kernels (benchmarks/train_throughput.py measures the gain). The same
            weights up to float rounding; checkpoints load into either layout.
    """

    objective: ClassVar[str] = "base"

    def __init__(
        self,
        backbone: str = "resnet18",
        output_stride: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        proj_dim: int = 128,
        proj_hidden_dim: int = 512,
        temperature: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        noise_std: float = 0.1,
        gain_std: float = 0.1,
        s1_channels: int = 2,
        s2_channels: int = 12,
        gather_distributed: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_meta: dict[str, Any] = {}
        self.predict_outputs = PredictOutputs()
        self.views = PairedViews(tuple(crop_scale), noise_std, gain_std)  # type: ignore[arg-type]
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # -- hooks -------------------------------------------------------------------------------
    def configure_models(self) -> None:
        """Build the S1 and S2 backbones (subclasses add heads and fusion modules)."""
        # Checkpoints written before `backbone_kwargs` existed lack the key.
        extra: dict[str, Any] = dict(self.hparams.get("backbone_kwargs") or {})
        if self.hparams["output_stride"] is not None:
            extra["output_stride"] = self.hparams["output_stride"]
        self.encoder: PairedEncoder = build_paired_encoder(
            self.hparams["backbone"],
            s1_channels=self.hparams["s1_channels"],
            s2_channels=self.hparams["s2_channels"],
            **extra,
        )

    def projection_head(self, in_dim: int) -> ProjectionHead:
        """A projection head into the loss space, sized by the hyperparameters."""
        return ProjectionHead(in_dim, self.hparams["proj_hidden_dim"], self.hparams["proj_dim"])

    @abstractmethod
    def configure_losses(self) -> None:
        """Build the loss modules."""

    def configure_metrics(self) -> None:
        """Metrics beyond the loss terms and the collapse monitor (none by default)."""

    @abstractmethod
    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """The loss of a batch, and the embeddings to watch for collapse.

        Args:
            batch: A normalised batch.

        Returns:
            ``(loss, embeddings)``.
        """

    def embed(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Frozen embeddings for export and probes (one backbone pass per sensor).

        Args:
            batch: A normalised batch.

        Returns:
            Embeddings, each (B, D): see :meth:`embed_features`.
        """
        return self.embed_features(self.encoder.encode(batch))

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """The embeddings of one backbone pass.

        Keys: ``s1``, ``s2`` (pooled backbone features) and ``joint`` (their concatenation at
        the backbone depth). Subclasses add their objective's probe embeddings, and ``proj_*``
        keys for the projection (aligned) space.

        Args:
            features: Each sensor's backbone features (``encoder.encode``).

        Returns:
            Embeddings, each (B, D).
        """
        pooled = {name: f.pooled for name, f in features.items()}
        return {**pooled, "joint": torch.cat([pooled["s1"], pooled["s2"]], dim=1)}

    # -- Lightning -----------------------------------------------------------------------------
    def _in_weight_layout(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Chips channels-last where the weights are (training with ``channels_last``).

        Here and not in ``on_after_batch_transfer``: Lightning calls only the datamodule's
        hook where both define one, and torchgeo's datamodules do.
        """
        if not self.hparams.get("channels_last", False):
            return batch
        return {
            k: v.contiguous(memory_format=torch.channels_last)
            if isinstance(v, Tensor) and v.ndim == 4 and k.startswith("image")
            else v
            for k, v in batch.items()
        }

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        loss, embeddings = self.compute_loss(self._in_weight_layout(batch))
        size = int(batch["image_s2"].shape[0])
        if not torch.isfinite(loss.total):
            terms = ", ".join(f"{k}={float(v):.4g}" for k, v in loss.terms.items())
            raise FloatingPointError(
                f"objective {self.objective!r}: non-finite {stage} loss {float(loss.total)} at "
                f"step {self.global_step} (epoch {self.current_epoch}); terms: {terms or '-'}"
            )
        self.log(
            f"{stage}/loss", loss.total, prog_bar=True, batch_size=size, sync_dist=stage != "train"
        )
        for name, value in loss.terms.items():
            self.log(f"{stage}/{name}", value, batch_size=size, sync_dist=stage != "train")
        for name, value in embeddings.items():
            self.log(
                f"{stage}/embedding_std_{name}",
                std_of_l2_normalized(value.detach().float()),
                batch_size=size,
                sync_dist=stage != "train",
            )
        return loss.total

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """One optimisation step.

        Args:
            batch: A normalised, augmented batch.
            batch_idx: Index of the batch.

        Returns:
            The loss.
        """
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Validation loss (a batch of a single chip, which has no negatives, is skipped).

        Args:
            batch: A normalised batch.
            batch_idx: Index of the batch.
        """
        if batch["image_s2"].shape[0] < 2:
            return
        self._step(batch, "val")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """What :attr:`predict_outputs` asks for, of a normalised batch (and its ``index``).

        Args:
            batch: A normalised batch (chips or export windows).
            batch_idx: Index of the batch.

        Returns:
            The embeddings (and dense maps) asked for.
        """
        wanted = self.predict_outputs
        if (
            wanted.keys is not None
            and not wanted.dense
            and set(wanted.keys) <= {*SINGLE_SENSOR_KEYS}
        ):
            # Pooled per-sensor embeddings are that backbone alone: skip the other sensor.
            out = {k: self.encoder[k](batch[f"image_{k}"]) for k in wanted.keys}
        else:
            features = self.encoder.encode(batch)
            out = self.embed_features(features)
            if wanted.keys is not None:
                out = {k: out[k] for k in wanted.keys if k in out}
            if wanted.dense:
                out |= {f"dense_{name}": f.dense for name, f in features.items()}
        if "index" in batch:
            out["index"] = batch["index"]
        return out

    def configure_optimizers(self) -> Any:
        """AdamW with a cosine schedule over the planned epochs."""
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        epochs = (
            self.trainer.max_epochs
            if self.trainer.max_epochs and self.trainer.max_epochs > 0
            else 1
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def setup(self, stage: str) -> None:
        """Lay the weights out channels-last for training, before the optimizer takes them.

        Args:
            stage: Lightning's stage (``fit``, ``validate``, ``predict`` ...).
        """
        # Checkpoints written before the option existed train contiguous, as they did.
        if stage == "fit" and self.hparams.get("channels_last", False):
            self.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        """Take the band lists and normalisation of the datamodule into the checkpoint.

        Raises:
            ConfigError: If the chip store's band counts differ from the model's.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "normalisation"):
            return
        bands = datamodule.bands
        for key, channels in (("s1", "s1_channels"), ("s2", "s2_channels")):
            if key in bands and bands[key] and len(bands[key]) != self.hparams[channels]:
                raise ConfigError(
                    f"objective {self.objective!r}: the chip store has {len(bands[key])} {key} "
                    f"bands {bands[key]} but the model expects {self.hparams[channels]}"
                )
        self.data_meta = {
            "bands": bands,
            "normalisation": datamodule.normalisation,
            "chips_dir": str(getattr(datamodule, "chips_dir", "")),
        }
        chip_size = getattr(datamodule, "chip_size", None)
        if chip_size is not None:  # what export windows default to and the data checks compare
            self.data_meta["chip_size"] = int(chip_size)
        # The seed Lightning's seed_everything set (LightningCLI's seed_everything): the probes
        # take their error bars over it.
        seed = os.environ.get("PL_GLOBAL_SEED")
        if seed is not None:
            self.data_meta["train_seed"] = int(seed)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what later stages need to use the encoders (bands, normalisation).

        As plain types only, so that the checkpoint loads with ``weights_only=True``.
        """
        checkpoint["eo_mmcl"] = plain(
            {"objective": self.objective, "version": __version__, **self.data_meta}
        )
        # last.ckpt is saved at an epoch's end, after validation: the state the next epoch
        # starts from, which a resumed run restores (eo_mmcl.objectives.rng).
        checkpoint[RNG_KEY] = capture_rng()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the band lists and normalisation, and the random state when resuming.

        When resuming on a chip store, the checkpoint is checked against it first.

        Lightning calls this before it loads the weights, so a resumed run on a store with
        other bands, chip size or statistics stops here with one line, not a shape error.

        Raises:
            ConfigError: If the checkpoint does not fit the chip store training resumes on.
        """
        meta = checkpoint.get("eo_mmcl", {})
        self.data_meta = {k: v for k, v in meta.items() if k not in ("objective", "version")}
        trainer = self._trainer  # None under load_from_checkpoint
        datamodule = getattr(trainer, "datamodule", None)
        chips_dir = getattr(datamodule, "chips_dir", None)
        if trainer is not None and chips_dir is not None:
            # Imported here: the checkpoint module imports every objective.
            from eo_mmcl.objectives.checkpoint import check_fits_store

            source = trainer.ckpt_path or "the checkpoint resumed from"
            check_fits_store(source, meta, chips_dir, getattr(datamodule, "normalisation", None))
        state = checkpoint.get(RNG_KEY)
        if trainer is not None and state is not None:
            # Resuming: from here to the first training batch Lightning draws from the
            # generators only in the sanity validation, which it runs under isolate_rng, and
            # where the uninterrupted run did too (the epoch's data loader iterator, whose
            # creation draws the worker seeds). Not at the epoch start: on resume Lightning
            # creates that iterator before the hook.
            restore_rng(state)


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
