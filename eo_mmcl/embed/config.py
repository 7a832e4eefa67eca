"""Options of the embed stage (``eo-mmcl embed`` and the pipeline file's ``embed.config``).

Kept apart from the exporter so that the command line builds its options from
:class:`EmbedConfig` without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from eo_mmcl.embed.cog import UINT8_NODATA, resolve_dtype
from eo_mmcl.errors import ConfigError

#: Lightning accelerators the predict loop (export and probes) can run on.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@dataclass(frozen=True)
class EmbedConfig:
    """Options of ``eo-mmcl embed``.

    Args:
        modality: s1, s2, joint, or all (also the unique paths of coral/decur).
        stride: Output pixel size in S2 pixels.
        window: Window size in S2 pixels (default: the training chip size, else 64).
        step: Spacing of window centres in S2 pixels, a multiple of ``stride`` (default: the
            largest multiple of ``stride`` not above ``window / 2``).
        dtype: Stored type: float16, or uint8 (8-bit codes, a scale and offset per band; int8 is
            an alias that writes uint8).
        batch_size: Windows per forward pass.
        preview: Write PCA false-colour previews.
        accelerator: Where the encoder runs: auto (a GPU when there is one, else the CPU), cpu,
            gpu, cuda or mps. Float32 on every device.
    """

    modality: str = "all"
    stride: int = 8
    window: int | None = None
    step: int | None = None
    dtype: str = "float16"
    batch_size: int = 64
    preview: bool = True
    accelerator: str = "auto"

    def resolved(self, default_window: int) -> EmbedConfig:
        """The config with ``window`` and ``step`` filled in.

        Args:
            default_window: Window when none is given.

        Returns:
            The config.
        """
        window = self.window
        if window is None:
            window = max(default_window, self.stride)
            window += (window - self.stride) % 2  # centred on its output pixel (see WindowGrid)
        step = self.step or max(self.stride, (window // 2) // self.stride * self.stride)
        return replace(self, window=window, step=step)


def stored_type(config: EmbedConfig, messages: list[str]) -> EmbedConfig:
    """The config with ``dtype`` as stored: an alias (``int8``) becomes its type, with a note.

    Raises:
        ConfigError: If the dtype is unknown.
    """
    dtype = resolve_dtype(config.dtype)
    if dtype != config.dtype:
        messages.append(
            f"--dtype {config.dtype} writes {dtype} (codes 0..254, nodata {UINT8_NODATA}, a "
            "scale and offset per band): GDAL before 3.7 and QGIS 3.22 misread signed 8-bit"
        )
    return replace(config, dtype=dtype)


def ensure_config(config: EmbedConfig) -> None:
    """Validate options that need no input files.

    Args:
        config: Options.

    Raises:
        ConfigError: If an option is out of range.
    """
    if config.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {config.batch_size}")
    check_accelerator_name(config.accelerator)
    # Windows and steps are counted in strides (a division by zero otherwise).
    for option, value in (
        ("stride", config.stride),
        ("window", config.window),
        ("step", config.step),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"--{option} must be >= 1, got {value}")


def check_accelerator_name(accelerator: str) -> None:
    """Refuse an accelerator name the predict loop does not know.

    Args:
        accelerator: The option's value.

    Raises:
        ConfigError: If it is not one of :data:`ACCELERATORS`.
    """
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"--accelerator must be one of {list(ACCELERATORS)}, got {accelerator!r}")
