"""Stage manifests: what a stage read, with which config and versions, and what it wrote.

A stage folder is finished when its ``stage_manifest.json`` says ``complete`` with the
fingerprint of the stage's current inputs and config, and its outputs are still there. The
fingerprint hashes the stage's config with the digests of its inputs (upstream outputs or
source files), so a stage reruns exactly when something it depends on changed.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from eo_mmcl.io import atomic_output
from eo_mmcl.io.digest import json_digest, sha256_file

MANIFEST: Final = "stage_manifest.json"

#: Packages whose versions go into every manifest (what decides the bytes a stage writes).
VERSIONED_PACKAGES: Final = (
    "eo_mmcl", "torch", "torchgeo", "lightning", "timm", "rasterio", "zarr", "dask",
    "numpy", "geopandas",
)  # fmt: skip


def _files(paths: Iterable[Path]) -> list[Path]:
    """Files under the given files or folders, sorted.

    Hidden files and folders (temporaries, job ledgers) and stage manifests (which change as
    the stage completes) are left out: they are how a stage works, not what it hands on.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.name != MANIFEST
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
    return sorted(found)


def tree_digest(paths: Iterable[Path], root: Path) -> dict[str, dict[str, Any]]:
    """Size and content digest of every file under ``paths``, keyed by path relative to root.

    Args:
        paths: Files or folders.
        root: Folder the keys are relative to.

    Returns:
        ``{relative path: {"size": bytes, "digest": hex}}``.
    """
    return {
        str(p.relative_to(root)) if p.is_relative_to(root) else str(p): {
            "size": p.stat().st_size,
            "digest": sha256_file(p),
        }
        for p in _files(paths)
    }


def fingerprint(config: Any, inputs: Mapping[str, Any]) -> str:
    """The digest of a stage's config and its inputs' digests.

    Args:
        config: JSON-serialisable stage config.
        inputs: JSON-serialisable input digests.

    Returns:
        Hex digest.
    """
    return json_digest({"config": config, "inputs": inputs})


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide what stages write, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def now() -> str:
    """The current UTC time, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class StageManifest:
    """The record a stage folder keeps of its last run.

    Args:
        stage: Stage name.
        status: ``running`` while the stage works, ``complete`` once its outputs are final.
        fingerprint: Digest of the config and inputs this run was made from.
        config: The stage's config.
        inputs: Input digests (upstream stage fingerprints and output digests, source files).
        outputs: Output files with size and digest (filled on completion).
        versions: Package versions.
        started: Start time (UTC).
        finished: End time (UTC), on completion.
        seconds: Wall time, on completion.
        summary: Stage-specific figures (counts, scores).
    """

    stage: str
    status: str
    fingerprint: str
    config: Any
    inputs: dict[str, Any]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    started: str = field(default_factory=now)
    finished: str | None = None
    seconds: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        """Write the manifest atomically into a stage folder.

        Args:
            folder: The stage folder.
        """
        with atomic_output(folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")

    @classmethod
    def read(cls, folder: Path) -> StageManifest | None:
        """Read a stage folder's manifest.

        Args:
            folder: The stage folder.

        Returns:
            The manifest, or None when there is none or it is unreadable (then the stage
            simply runs again).
        """
        path = folder / MANIFEST
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError):
            return None

    def outputs_present(self, folder: Path) -> bool:
        """Whether every recorded output still exists with its recorded size.

        Args:
            folder: The stage folder (output keys are relative to it).

        Returns:
            True if all outputs are there.
        """
        for name, info in self.outputs.items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != info["size"]:
                return False
        return True
