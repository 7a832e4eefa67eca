"""Options generated from the stage configs: every field is an option, with its help."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from eo_mmcl.catalog.config import CatalogConfig
from eo_mmcl.cli import app
from eo_mmcl.embed.config import EmbedConfig
from eo_mmcl.options import config_fields, config_options, docstring_args, first_sentence
from eo_mmcl.probe.config import ProbeConfig
from eo_mmcl.simulate import SimulationConfig
from eo_mmcl.tile import TileConfig

runner = CliRunner()


def _options(command: str) -> dict[str, Any]:
    group: Any = typer.main.get_command(app)
    params = group.commands[command].params
    return {opt: p for p in params if p.param_type_name == "option" for opt in p.opts}


@pytest.mark.parametrize(
    ("command", "config", "exclude", "rename"),
    [
        ("simulate", SimulationConfig, {"coregistration_shift_m", "epsg", "origin", "extra"},
         {"s2_date": "date"}),
        ("catalog", CatalogConfig, set(), {}),
        ("tile", TileConfig, {"split_fractions"}, {}),
        ("embed", EmbedConfig, set(), {}),
        ("probe", ProbeConfig, {"probes", "keys"}, {}),
    ],
)  # fmt: skip
def test_every_config_field_is_an_option_with_its_help_and_default(
    command: str, config: type, exclude: set[str], rename: dict[str, str]
) -> None:
    options = _options(command)
    described = docstring_args(config)
    for field in dataclasses.fields(config):
        if field.name in exclude:
            continue
        flag = "--" + rename.get(field.name, field.name).replace("_", "-")
        assert flag in options, f"{config.__name__}.{field.name} has no option {flag}"
        option = options[flag]
        assert option.help == first_sentence(described[field.name])
        assert option.default == field.default


def test_docstring_args_joins_continuation_lines_and_stops_at_the_next_section() -> None:
    def documented() -> None:
        """Do a thing.

        Args:
            alpha: First line
                and its continuation.
            beta (int): Typed form.

        Returns:
            gamma: Not an argument.
        """

    assert docstring_args(documented) == {  # type: ignore[arg-type]
        "alpha": "First line and its continuation.",
        "beta": "Typed form.",
    }
    assert first_sentence("Step in pixels (e.g. 8). Rest is detail.") == "Step in pixels (e.g. 8)."
    assert first_sentence("Uses :func:`f` and ``x``.") == "Uses f and x."


@dataclass(frozen=True)
class _Knobs:
    """Knobs of a toy stage.

    Args:
        size: Side in pixels.
        rate: Learning rate. Longer explanation that stays out of --help.
        label: An optional name.
        fast: Skip the slow part.
    """

    size: int = 8
    rate: float = 0.5
    label: str | None = None
    fast: bool = False


def test_a_new_config_field_becomes_an_option_with_one_edit(tmp_path: Path) -> None:
    toy = typer.Typer()
    received: list[Any] = []

    @toy.command()
    @config_options(_Knobs)
    def run(
        settings: dict[str, Any],
        output: Annotated[Path, typer.Option("-o", help="Output folder.")] = Path("out"),
    ) -> None:
        received.append((_Knobs(**settings), output))

    help_text = runner.invoke(toy, ["--help"], terminal_width=200).output
    assert "Learning rate." in help_text and "Longer explanation" not in help_text
    assert "--no-fast" in help_text and "Output folder." in help_text
    result = runner.invoke(toy, ["--size", "3", "--fast", "--label", "a", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert received == [(_Knobs(size=3, rate=0.5, label="a", fast=True), tmp_path)]


def test_a_field_without_description_or_option_type_is_refused() -> None:
    @dataclass
    class Undocumented:
        """No Args section."""

        size: int = 1

    with pytest.raises(TypeError, match=r"Undocumented.size has no description"):
        config_fields(Undocumented)

    @dataclass
    class Pair:
        """A pair.

        Args:
            shift: Two numbers.
        """

        shift: tuple[float, float] = (0.0, 0.0)

    with pytest.raises(TypeError, match=r"Pair.shift: .* cannot be an option"):
        config_fields(Pair)
    assert config_fields(Pair, exclude=("shift",)) == []
