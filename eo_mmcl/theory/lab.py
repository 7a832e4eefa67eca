"""The two lab runs end to end: sweep, tables, figures, Markdown section, manifest.

Like every pipeline stage, a lab run writes each file atomically and its manifest (the
completion record of :mod:`eo_mmcl.io.jobs`, fingerprinted by its settings) last, and is
idempotent: re-running with the same settings into a complete folder does nothing unless
forced. A run killed half way leaves no manifest and is simply redone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from eo_mmcl.io import atomic_output
from eo_mmcl.io.digest import json_digest
from eo_mmcl.io.jobs import read_record, write_record
from eo_mmcl.theory import linear, misalignment, misalignment_section, plots, section

#: File names inside OUT_DIR.
RESULTS: Final = "results.csv"
ANGLES: Final = "cca_angles.csv"
SECTION: Final = "section.md"
MANIFEST: Final = "theory_manifest.json"


@dataclass(frozen=True)
class LabOutput:
    """What a lab run produced (or found already complete).

    Args:
        out_dir: The output folder.
        results: The tidy results table.
        tables: Extra tables by name (the linear run's principal angles).
        files: Files written, relative to ``out_dir``.
        seconds: Wall time of the run that wrote the files.
        reused: True when a complete folder with the same settings was found and kept.
    """

    out_dir: Path
    results: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    files: tuple[str, ...]
    seconds: float
    reused: bool


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV atomically.

    Args:
        frame: The table.
        path: Destination.
    """
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_text(text: str, path: Path) -> None:
    """Write UTF-8 text atomically.

    Args:
        text: The text.
        path: Destination.
    """
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _normalised(settings: dict[str, Any]) -> Any:
    """Settings as they read back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(settings))


def load_if_complete(out_dir: Path, settings: dict[str, Any]) -> LabOutput | None:
    """Return the outputs of a finished run with the same settings, if there is one.

    Args:
        out_dir: The output folder.
        settings: Settings of the run about to start.

    Returns:
        The existing outputs, or None when the folder is incomplete or was made with other
        settings.
    """
    manifest = read_record(out_dir / MANIFEST, json_digest(_normalised(settings)))
    if manifest is None:
        return None
    files = tuple(manifest.get("files", ()))
    if not all((out_dir / f).is_file() for f in files):
        return None
    tables = {ANGLES: pd.read_csv(out_dir / ANGLES)} if ANGLES in files else {}
    return LabOutput(
        out_dir=out_dir,
        results=pd.read_csv(out_dir / RESULTS),
        tables=tables,
        files=files,
        seconds=float(manifest.get("seconds", 0.0)),
        reused=True,
    )


def write_manifest(
    out_dir: Path, settings: dict[str, Any], files: tuple[str, ...], seconds: float
) -> None:
    """Write the manifest (the completion record), last, marking the folder complete.

    Args:
        out_dir: The output folder.
        settings: The run's settings.
        files: Files written, relative to ``out_dir``.
        seconds: Wall time of the run.
    """
    payload = {
        "settings": _normalised(settings),
        "files": list(files),
        "seconds": round(seconds, 2),
    }
    write_record(out_dir / MANIFEST, json_digest(_normalised(settings)), payload, indent=2)


def _run_lab(
    out_dir: Path,
    settings: dict[str, Any],
    force: bool,
    produce: Callable[[], tuple[pd.DataFrame, dict[str, pd.DataFrame], list[Path], str]],
) -> LabOutput:
    """Resume or run one experiment: skip a complete folder, else write results and manifest.

    Args:
        out_dir: Output folder.
        settings: The sweep's settings (compared with the manifest's).
        force: Rerun even if the folder is complete with the same settings.
        produce: Runs the sweep and writes figures; returns ``(results, extra tables, figures,
            section text)``.

    Returns:
        The outputs.
    """
    if not force and (done := load_if_complete(out_dir, settings)) is not None:
        return done
    # An old manifest must not vouch for files this run is about to replace.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results, tables, figures, text = produce()
    seconds = time.perf_counter() - start
    write_csv(results, out_dir / RESULTS)
    for name, table in tables.items():
        write_csv(table, out_dir / name)
    write_text(text, out_dir / SECTION)
    files = (RESULTS, *tables, *(f.name for f in figures), SECTION)
    write_manifest(out_dir, settings, files, seconds)
    return LabOutput(out_dir, results, tables, files, seconds, reused=False)


def run_linear_lab(
    out_dir: Path,
    sweep: linear.LinearSweep,
    force: bool = False,
    on_run: Callable[[str], None] | None = None,
) -> LabOutput:
    """Run the linear-Gaussian experiment and write its outputs.

    Writes ``results.csv``, ``cca_angles.csv``, ``linear_r2.png``, ``linear_cca_angles.png``,
    ``section.md`` and the manifest.

    Args:
        out_dir: Output folder (created if needed).
        sweep: The grid.
        force: Rerun even if the folder is complete with the same settings.
        on_run: Progress callback, one line per training.

    Returns:
        The outputs.
    """
    settings = sweep.settings()

    def produce() -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[Path], str]:
        out = linear.run_linear_sweep(sweep, on_run)
        figures = [
            plots.plot_linear_r2(out.results, linear.GROUPS, out_dir / "linear_r2.png"),
            plots.plot_linear_angles(out.angles, out_dir / "linear_cca_angles.png"),
        ]
        text = section.linear_section(out.results, out.angles, settings, figures)
        return out.results, {ANGLES: out.angles}, figures, text

    return _run_lab(out_dir, settings, force, produce)


def run_misalignment_lab(
    out_dir: Path,
    sweep: misalignment.MisalignmentSweep,
    force: bool = False,
    on_run: Callable[[str], None] | None = None,
) -> LabOutput:
    """Run the misalignment experiment and write its outputs.

    Writes ``results.csv``, ``misalignment_r2.png``, ``section.md`` and the manifest.

    Args:
        out_dir: Output folder (created if needed).
        sweep: The grid.
        force: Rerun even if the folder is complete with the same settings.
        on_run: Progress callback, one line per training.

    Returns:
        The outputs.
    """
    settings = sweep.settings()

    def produce() -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[Path], str]:
        results = misalignment.run_misalignment_sweep(sweep, on_run)
        figures = [
            plots.plot_misalignment_r2(
                results, misalignment.GROUPS, out_dir / "misalignment_r2.png"
            )
        ]
        return (
            results,
            {},
            figures,
            misalignment_section.misalignment_section(results, settings, figures),
        )

    return _run_lab(out_dir, settings, force, produce)
