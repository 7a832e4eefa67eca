"""``eo-mmcl train``: LightningCLI over the objectives and the paired datamodule."""

from __future__ import annotations

import importlib
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from eo_mmcl.datamodules import PairedS1S2DataModule
from eo_mmcl.datamodules.datamodule import LEAST_COUNTS, check_counts
from eo_mmcl.errors import ConfigError
from eo_mmcl.objectives.base import Objective
from eo_mmcl.objectives.callbacks import install_last_checkpoint
from eo_mmcl.objectives.checkpoint import read_checkpoint, refusal
from eo_mmcl.objectives.supervised import store_tasks


@dataclass(frozen=True)
class TrainingRun:
    """One training run, given to LightningCLI through its Python API rather than as strings.

    The layers apply in order, each over the one before: the parser's defaults, the
    objective's config file, ``settings`` (typed values, e.g. from a pipeline file's fields),
    then ``overrides`` (command-line style, e.g. a pipeline file's ``train.args``, which users
    write as they would type them).

    Args:
        config: The objective's LightningCLI config file.
        settings: Values over the config file, nested as it is, e.g.
            ``{"trainer": {"max_epochs": 3}, "data": {"chips_dir": "runs/demo/tile"}}``.
        overrides: Command-line style arguments applied last (a ``--ckpt_path`` among them is
            ignored: give ``ckpt_path``).
        ckpt_path: Checkpoint to resume from (``last``, or a file).
    """

    config: Path
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Sequence[str] = ()
    ckpt_path: str | None = None

    def configure(self, parser: Any) -> Namespace:
        """The run's configuration, parsed and validated by ``parser`` layer by layer.

        Args:
            parser: A LightningCLI parser.

        Returns:
            The validated configuration.
        """
        config = parser.parse_args(["--config", str(self.config)])
        config = parser.parse_object(dict(self.settings), namespace=config)
        overrides = list(self.overrides)
        _pop_option(overrides, "--ckpt_path")
        return parser.parse_args(overrides, namespace=config) if overrides else config


class TrainingCLI(LightningCLI):
    """LightningCLI with eo_mmcl's defaults.

    ``accelerator='auto'``; precision ``bf16-mixed`` where a CUDA device is present and
    ``32-true`` on CPU unless the config sets one; seed 0 unless the config sets one. Models are
    given as ``class_path``/``init_args`` (any :class:`Objective`), the datamodule's
    arguments directly (``--data.chips_dir CHIPS_DIR``). A trainer that keeps checkpoints
    writes ``last.ckpt`` at the end of every epoch
    (:class:`~eo_mmcl.objectives.callbacks.LastCheckpoint`), whatever its config says.

    Args:
        args: LightningCLI's positional arguments (model and datamodule classes).
        training_run: A run given in Python (its layers replace LightningCLI's ``args``).
        kwargs: LightningCLI's keyword arguments.
    """

    def __init__(self, *args: Any, training_run: TrainingRun | None = None, **kwargs: Any) -> None:
        self.training_run = training_run
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse ``args`` as LightningCLI does, or the layers of a :class:`TrainingRun`."""
        if self.training_run is None:
            super().parse_arguments(parser, args)
        else:
            self.config = self.training_run.configure(parser)

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Defaults that keep runs on any machine reproducible."""
        parser.set_defaults({"trainer.accelerator": "auto"})

    def before_instantiate_classes(self) -> None:
        """Fill what the config leaves open: the precision for the device, the oracle's heads."""
        config = (
            self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        )
        trainer = config["trainer"]
        if trainer.get("precision") is None:
            trainer["precision"] = "bf16-mixed" if torch.cuda.is_available() else "32-true"
        _heads_from_store(config)
        _outputs_under_root(config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured trainer, with the every-epoch ``last.ckpt``.

        Added here rather than in every config so that any config (the shipped ones, a
        user's, the tests') gets the same ``last.ckpt``, which resuming and later stages read.

        Args:
            kwargs: Trainer arguments beyond the config (LightningCLI's).

        Returns:
            The trainer.
        """
        trainer = super().instantiate_trainer(**kwargs)
        install_last_checkpoint(trainer)
        return trainer


#: Where a run writes when its config names no ``trainer.default_root_dir``.
DEFAULT_ROOT = "runs/train/{objective}"
#: The loggers of a run whose config leaves ``trainer.logger`` at its default: class, folder.
DEFAULT_LOGGERS = (
    ("lightning.pytorch.loggers.CSVLogger", "logs"),
    ("lightning.pytorch.loggers.TensorBoardLogger", "tensorboard"),
)


def _outputs_under_root(config: Any) -> None:
    """Put every output of a run under ``trainer.default_root_dir``, as Lightning users expect.

    A config that leaves ``trainer.logger`` at its default gets a CSV and a TensorBoard logger
    there (``logs/``, ``tensorboard/``); checkpoint callbacks without a ``dirpath`` write into its
    ``checkpoints/``; an unset root is ``runs/train/<objective>``. The shipped configs give none
    of these paths, so ``--trainer.default_root_dir DIR`` moves logs and checkpoints alike.
    """
    trainer = config["trainer"]
    if trainer.get("default_root_dir") is None:
        model_class = _class(config["model"].get("class_path"))
        objective = getattr(model_class, "objective", None) or "model"
        trainer["default_root_dir"] = DEFAULT_ROOT.format(objective=objective)
    root = Path(trainer["default_root_dir"])
    if trainer.get("logger") in (None, True):
        # Lightning's default logger, as a CSV table and TensorBoard events under the root.
        trainer["logger"] = [
            Namespace(class_path=path, init_args=Namespace(save_dir=str(root), name=name))
            for path, name in DEFAULT_LOGGERS
        ]
    for callback in trainer.get("callbacks") or []:
        init_args = callback.get("init_args") if hasattr(callback, "get") else None
        if init_args is None or not issubclass(_class(callback.get("class_path")), ModelCheckpoint):
            continue
        if init_args.get("dirpath") is None:
            init_args["dirpath"] = str(root / "checkpoints")


def _class(class_path: Any) -> type:
    """The class a config's ``class_path`` names (``object`` when it names none)."""
    if not isinstance(class_path, str) or "." not in class_path:
        return object
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name, object)


def _heads_from_store(config: Any) -> None:
    """Give the oracle the chip store's own tasks where its config names none.

    The store records each task's classes, so a config that restated them would fail on any
    store with other tasks until it was edited.
    """
    model = config["model"]
    init_args = model.get("init_args")
    if init_args is None or not str(model.get("class_path", "")).endswith("SupervisedObjective"):
        return
    chips_dir = config["data"].get("chips_dir")
    # A pipeline checks its arguments before the store exists: the model is not built then.
    if init_args.get("num_classes") is None and chips_dir and Path(chips_dir).is_dir():
        classes, multilabel = store_tasks(chips_dir)
        init_args["num_classes"] = classes
        if init_args.get("multilabel") is None:
            init_args["multilabel"] = multilabel


class _ParseOnlyCLI(TrainingCLI):
    """The same parser and checks as :class:`TrainingCLI`, building nothing."""

    def instantiate_classes(self) -> None:
        """Only the datamodule's counts: the data the classes would open may not exist yet.

        Raises:
            ConfigError: If a count is out of range.
        """
        data = self.config["data"]
        check_counts(**{name: int(data[name]) for name in LEAST_COUNTS if name in data})


def check_training_args(run: TrainingRun | Sequence[str], where: str) -> Namespace:
    """Parse a training run as :func:`run_training` will, without building anything.

    A pipeline checks its ``train.args`` this way before any stage runs: an unknown key or a
    wrong type would otherwise be found only once simulate, catalog and tile have run.

    Args:
        run: The run, or ``eo-mmcl train`` arguments (``--config`` first; a ``--ckpt_path`` is
            left out, as :func:`run_training` does).
        where: What to name in the message (the pipeline key).

    Returns:
        The configuration the run would train with.

    Raises:
        ConfigError: If LightningCLI refuses them (its message on one line), or a datamodule
            count is out of range.
    """
    from jsonargparse import ArgumentError

    spec, arguments, _ = _split(run)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightningCLI's about sys.argv and deprecations
            cli = _ParseOnlyCLI(
                *_CLI_CLASSES,
                **_CLI_OPTIONS,
                training_run=spec,
                args=arguments,
                run=False,
                parser_kwargs={"exit_on_error": False},
            )
    except (ArgumentError, ConfigError) as err:
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from err
    return cli.config


def _split(
    run: TrainingRun | Sequence[str],
) -> tuple[TrainingRun | None, list[str] | None, str | None]:
    """A run as LightningCLI's inputs (the Python layers, or the argument list) and its resume.

    Lightning takes the checkpoint to resume from in ``fit``, not in the config, so an
    argument list's ``--ckpt_path`` is taken out of it.
    """
    if isinstance(run, TrainingRun):
        return run, None, run.ckpt_path
    arguments = list(run)
    ckpt_path = _pop_option(arguments, "--ckpt_path")
    return None, arguments, ckpt_path


#: The classes and options of every training CLI (run and check alike).
_CLI_CLASSES = (Objective, PairedS1S2DataModule)
_CLI_OPTIONS: dict[str, Any] = {"subclass_mode_model": True, "seed_everything_default": 0}

#: ``--ckpt_path`` values that Lightning resolves to a file itself.
_SYMBOLIC_CHECKPOINTS = ("last", "best", "hpc", "registry")


def _pop_option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if arg.startswith(name + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def run_training(run: TrainingRun | Sequence[str]) -> TrainingCLI:
    """Parse a config and overrides, then fit.

    Args:
        run: The run in Python (:class:`TrainingRun`), or command-line arguments, e.g.
            ``["--config", "pipelines/configs/clip.yaml", "--data.chips_dir",
            "runs/demo/chips", "--ckpt_path", "last"]``.

    Returns:
        The CLI, with its trainer and model after fitting.

    Raises:
        SourceError: If the checkpoint to resume from is missing, unreadable, or holds anything
            but tensors and plain types.
    """
    spec, arguments, ckpt_path = _split(run)
    # The arguments are given explicitly on purpose (the eo-mmcl CLI and the pipeline pass
    # them), so LightningCLI's warning about sys.argv holding other words is noise.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli = TrainingCLI(
        *_CLI_CLASSES,
        **_CLI_OPTIONS,
        training_run=spec,
        save_config_kwargs={"overwrite": True},
        args=arguments,
        run=False,
    )
    if ckpt_path is not None and ckpt_path not in _SYMBOLIC_CHECKPOINTS:
        read_checkpoint(ckpt_path)  # refuses a missing file or one that could run code
    try:
        # Lightning resolves "last" itself; weights_only keeps its load from running code.
        cli.trainer.fit(
            cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True
        )
    except pickle.UnpicklingError as err:
        raise refusal(cli.trainer.ckpt_path or str(ckpt_path), err) from err
    return cli
