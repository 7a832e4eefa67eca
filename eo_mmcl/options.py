"""Command-line options generated from a stage's config class, so that an option is one edit.

A stage's config (a dataclass or a pydantic model) already names every field, its type, its
default and, in its Google docstring's ``Args:`` section (or a pydantic ``description``), what it
means. :func:`config_options` turns those fields into the typer options of the stage's command:
adding a field to the config adds the option, with its help, to the command and to the pipeline
file's section alike.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

#: Field types a command-line option can carry (optional ones too).
_OPTION_TYPES = (int, float, str, bool, Path)

_ARG_LINE = re.compile(r"^(?P<indent>\s*)(?P<name>\w+)(?: \([^)]*\))?:\s*(?P<text>.*)$")


def docstring_args(cls: type) -> dict[str, str]:
    """What a Google docstring's ``Args:`` section says of each name, continuation lines joined.

    Args:
        cls: A class (or function) with a Google-style docstring.

    Returns:
        ``{name: one-paragraph text}``; empty when there is no ``Args:`` section.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:") + 1
    except StopIteration:
        return {}
    found: dict[str, list[str]] = {}
    name_indent: int | None = None
    current: str | None = None
    for line in lines[start:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if name_indent is not None and indent < name_indent:
            break  # the next section (Returns:, Raises:, ...)
        match = _ARG_LINE.match(line)
        if match and (name_indent is None or indent == name_indent):
            name_indent = indent
            current = match["name"]
            found[current] = [match["text"]]
        elif current is not None:
            found[current].append(line.strip())
    return {name: " ".join(parts).strip() for name, parts in found.items()}


def first_sentence(text: str) -> str:
    """The first sentence of a description: the option's one-line help.

    Args:
        text: A field's description.

    Returns:
        Everything up to the first full stop that ends a sentence (not ``e.g.``, ``i.e.``, or a
        decimal point).
    """
    sentence = re.split(r"(?<!\be\.g)(?<!\bi\.e)\.\s", text, maxsplit=1)[0].rstrip(".") + "."
    # RST literals and roles (``x``, :func:`x`) read as plain text in a terminal.
    return re.sub(r":\w+:`([^`]+)`", r"\1", sentence).replace("``", "")


@dataclass(frozen=True)
class ConfigOption:
    """One config field as a command-line option.

    Args:
        field: The config field's name.
        parameter: The command's parameter name (the field's, or its ``rename``).
        annotation: The field's type.
        default: The field's default.
        help: The option's help text (from the field's description).
    """

    field: str
    parameter: str
    annotation: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        """The option as typed: ``--parcel-size`` for ``parcel_size``."""
        return "--" + self.parameter.replace("_", "-")

    @property
    def declaration(self) -> str:
        """What typer declares: a switch pair ``--s2-only/--no-s2-only`` for a bool field."""
        if self.annotation is bool:
            return f"{self.flag}/--no-{self.flag[2:]}"
        return self.flag


def _is_option_type(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and args[0] in _OPTION_TYPES
    return annotation in _OPTION_TYPES


def config_fields(
    config: type, exclude: Collection[str] = (), rename: Mapping[str, str] | None = None
) -> list[ConfigOption]:
    """The fields of a config class that become options, in declaration order.

    Args:
        config: A dataclass or a pydantic model class.
        exclude: Fields the command sets itself (or never exposes).
        rename: Option names that differ from the field's (``{"s2_date": "date"}``).

    Returns:
        One :class:`ConfigOption` per exposed field.

    Raises:
        TypeError: If a field that is not excluded has no description, or a type no option
            can carry (a tuple, a dict): exclude it and give the command its own option.
    """
    rename = dict(rename or {})
    described = docstring_args(config)
    hints = typing.get_type_hints(config)
    if dataclasses.is_dataclass(config):
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(config)
            if f.default is not f.default_factory
        }
        names = [f.name for f in dataclasses.fields(config)]
    else:  # a pydantic model
        model_fields = config.model_fields  # type: ignore[attr-defined]
        defaults = {
            name: inspect.Parameter.empty if info.is_required() else info.get_default()
            for name, info in model_fields.items()
        }
        described |= {n: i.description for n, i in model_fields.items() if i.description}
        names = list(model_fields)
    options: list[ConfigOption] = []
    for name in names:
        if name in exclude:
            continue
        if name not in described:
            raise TypeError(f"{config.__name__}.{name} has no description for its --help")
        if not _is_option_type(hints[name]):
            raise TypeError(f"{config.__name__}.{name}: {hints[name]} cannot be an option")
        options.append(
            ConfigOption(name, rename.get(name, name), hints[name], defaults[name], described[name])
        )
    return options


def config_options(
    config: type,
    *,
    into: str = "settings",
    exclude: Collection[str] = (),
    rename: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Give a command one option per field of its stage's config.

    The decorated command declares its own parameters (inputs, output folder, switches) and one
    parameter ``into`` that receives ``{field: value}`` of every generated option; it builds the
    config from that (adding what it sets itself). ``--help`` shows each field's description.

    Args:
        config: The stage's config class (a dataclass or a pydantic model).
        into: Name of the command's parameter that receives the field values.
        exclude: Fields the command does not expose as options of their own.
        rename: Option names that differ from the field names.

    Returns:
        A decorator for a typer command function.
    """
    fields = config_fields(config, exclude, rename)

    def decorate(command: F) -> F:
        # The command's own annotations, resolved with their typer metadata (Annotated), since
        # typer reads the wrapper's signature and not the command's.
        hints = typing.get_type_hints(command, include_extras=True)
        signature = inspect.signature(command)
        own = [
            p.replace(annotation=hints.get(name, p.annotation))
            for name, p in signature.parameters.items()
            if name != into
        ]
        clash = {f.parameter for f in fields} & {p.name for p in own}
        if clash:
            raise TypeError(f"{command.__name__}: options {sorted(clash)} are declared twice")
        generated = [
            inspect.Parameter(
                f.parameter,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    f.annotation, typer.Option(f.declaration, help=first_sentence(f.help))
                ],
                default=f.default,
            )
            for f in fields
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[into] = {
                f.field: kwargs.pop(f.parameter) for f in fields if f.parameter in kwargs
            }
            return command(*args, **kwargs)

        positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
        parameters = [*positional, *generated, *keyword]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        wrapper.__annotations__["return"] = hints.get("return")
        wrapper.config_fields = fields  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
