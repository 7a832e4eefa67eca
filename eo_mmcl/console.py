"""Consoles and error reporting shared by every ``eo-mmcl`` command group."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from eo_mmcl.errors import EoMmclError

F = TypeVar("F", bound=Callable[..., Any])

#: Results and key=value lines go to stdout; errors and progress to stderr.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


#: The one progress switch of every command: ``--progress`` (the default) or ``--quiet``.
#: ``--no-progress`` (the pipeline's earlier spelling) still works.
ProgressSwitch = Annotated[
    bool,
    typer.Option(
        "--progress/--quiet", " /--no-progress", help="Progress bars on stderr (--quiet: none)."
    ),
]


#: Where a stage's Dask jobs run, shared by the commands that scale out (tile, embed).
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Dask LocalCluster workers (default: one per CPU; 0: in-process)."),
]
SchedulerOption = Annotated[str | None, typer.Option(help="Address of an existing Dask scheduler.")]


def deprecated_alias(app: typer.Typer, old: str, new: str, command: Callable[..., Any]) -> None:
    """Keep an old command name working, hidden, with a one-line deprecation notice.

    Args:
        app: The command group both names live in.
        old: The old name.
        new: The name to use instead (shown in the notice).
        command: The command function registered under ``new``.
    """

    @functools.wraps(command)
    def alias(*args: Any, **kwargs: Any) -> Any:
        err_console.print(f"[yellow]deprecated:[/yellow] `{old}` is now `{new}`", highlight=False)
        return command(*args, **kwargs)

    app.command(old, hidden=True, help=f"Deprecated name of `{new}`.")(alias)


#: What a user can do about a file-system error, by errno.
_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space and rerun: finished outputs are kept, nothing is half-written",
    errno.EDQUOT: "free some space and rerun: finished outputs are kept, nothing is half-written",
    errno.EROFS: "choose a writable output folder",
    errno.EACCES: "check the permissions, or choose another output folder",
    errno.EPERM: "check the permissions, or choose another output folder",
}


def os_error_message(err: OSError, output: object = None) -> str | None:
    """One line for a file-system error, or None for one that is not the user's to fix.

    An error that names no file is still the user's when it is about the disk (full,
    read-only, no permission: a ``write`` deep in Zarr or GDAL reports only the errno); it then
    names the command's output folder. Any other ``OSError`` without a file name (a socket, a
    lost worker) is a fault of the program or the machine and keeps its traceback.

    Args:
        err: The error.
        output: The command's output folder, if it has one.

    Returns:
        ``"<file>: <reason>[; <hint>]"``, or None.
    """
    hint = _OS_ERROR_HINTS.get(err.errno or 0)
    if err.filename is not None:
        message = f"{err.filename}: {err.strerror or err}"
    elif type(err).__module__.startswith("rasterio"):
        # rasterio's errors carry GDAL's message, which names the file, but no filename.
        message = str(err)
    elif hint is not None:
        where = f"{output}" if output is not None else "the output folder"
        message = f"{where}: {err.strerror or err} (while writing)"
    else:
        return None
    return f"{message}; {hint}" if hint else message


def reports_errors(func: F) -> F:
    """Turn input and file-system errors into a one-line message and exit code 2 (no traceback).

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
        except OSError as err:
            output = next((kwargs[k] for k in ("output", "out_dir") if k in kwargs), None)
            message = os_error_message(err, output)
            if message is None:
                raise
            err_console.print(f"[bold red]error:[/bold red] {escape(message)}")
            raise typer.Exit(code=2) from err

    return wrapper  # type: ignore[return-value]
