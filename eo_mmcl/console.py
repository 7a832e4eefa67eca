"""Consoles and error reporting shared by every ``eo-mmcl`` command group."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from eo_mmcl.errors import EoMmclError

F = TypeVar("F", bound=Callable[..., Any])

#: Results and key=value lines go to stdout; errors and progress to stderr.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def reports_errors(func: F) -> F:
    """Turn eo_mmcl's input errors into a one-line message and exit code 2 (no traceback).

    Args:
        func: A command function.

    Returns:
        The wrapped command.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EoMmclError as err:
            err_console.print(f"[bold red]error:[/bold red] {err}")
            raise typer.Exit(code=2) from err

    return wrapper  # type: ignore[return-value]
