r"""Source definitions: where rasters live and how to read sensor, date and bands for each file.

A source is either a folder (scanned recursively with :data:`DEFAULT_RULES`) or a YAML file such as
``data_catalog/simulator.yaml``::

    name: eo_mmcl-simulator
    root: ../runs/demo/scenes        # relative to the YAML file
    include: ["**/*.tif"]
    rules:
      - name: sentinel-2 image
        pattern: '(?P<scene>[^/_]+)_(?P<sensor>S2)_(?P<date>\d{8})\.tif$'
        role: image
        product: L2A
        bands: descriptions

Each file takes the first rule whose ``pattern`` (``re.search`` on the path relative to the root,
with ``/`` separators) matches and whose ``require_tags`` are all present. A field (sensor, role,
product, task, scene, datetime, nodata) comes from the rule's literal value, else from the named
regex group of the same name (``date`` for dates), else from the GeoTIFF tag that ``tags`` maps
it to. Band names come from ``bands``: a list, ``descriptions`` (the band descriptions), or
``pattern``: one band per file from the ``band`` group; files that share every other group form
one logical raster (Sentinel-2 products shipped as one file per band).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eo_mmcl.errors import ConfigError

ROLES = ("image", "label", "cloud_mask", "parcel_id")
FIELDS = ("sensor", "role", "product", "task", "scene", "datetime", "nodata")
RASTER_SUFFIXES = (".tif", ".tiff", ".TIF", ".TIFF")


@dataclass(frozen=True)
class SourceRule:
    """How to read one kind of file of a source.

    Args:
        name: Human-readable name, reported in the rejected table.
        pattern: Regular expression searched in the path relative to the source root.
        bands: A list of band names, ``"descriptions"`` or ``"pattern"``.
        band_order: For ``bands: pattern``, the order of bands in the logical raster (bands
            not listed follow in name order).
        values: Literal field values (sensor, role, product, task, scene, datetime, nodata).
        tags: Field name to GeoTIFF tag name, read when neither a literal nor a group gives it.
        require_tags: Tags that must be present for the rule to apply.
    """

    name: str
    pattern: re.Pattern[str]
    bands: tuple[str, ...] | str = "descriptions"
    band_order: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    require_tags: tuple[str, ...] = ()

    @property
    def grouped(self) -> bool:
        """Whether files of this rule are single bands of a multi-file logical raster."""
        return self.bands == "pattern"

    def match(self, relative_path: str, file_tags: dict[str, str]) -> re.Match[str] | None:
        """Return the regex match when this rule applies to a file, else None.

        Args:
            relative_path: Path relative to the source root, ``/``-separated.
            file_tags: The file's dataset tags.

        Returns:
            The match, or None.
        """
        if any(t not in file_tags for t in self.require_tags):
            return None
        return self.pattern.search(relative_path)

    def field_value(self, name: str, match: re.Match[str], file_tags: dict[str, str]) -> Any | None:
        """Resolve a field from the literal, then the regex group, then the mapped tag.

        Args:
            name: Field name (see ``FIELDS``).
            match: The rule's match on the file path.
            file_tags: The file's dataset tags.

        Returns:
            The value, or None when no source gives it.
        """
        if name in self.values:
            return self.values[name]
        groups = match.groupdict()
        group = "date" if name == "datetime" and "date" in groups else name
        if groups.get(group) is not None:
            return groups[group]
        tag = self.tags.get(name)
        if tag is not None and tag in file_tags:
            return file_tags[tag]
        return None


@dataclass(frozen=True)
class SourceDefinition:
    """A named set of rasters under a root folder, with the rules to read them.

    Args:
        name: Source name (prefix of raster ids in the catalog).
        root: Folder that holds the rasters.
        rules: Rules tried in order for each file.
        include: Glob patterns (relative to ``root``) of files to consider.
        description: Free text.
        stac: STAC input (item, catalog or collection JSON, stac-geoparquet file, or a folder
            of item JSONs) whose items' assets are the rasters; ``rules`` are then unused.
    """

    name: str
    root: Path
    rules: tuple[SourceRule, ...]
    include: tuple[str, ...] = ("**/*",)
    description: str = ""
    stac: Path | None = None

    def _candidates(self) -> list[Path]:
        found: set[Path] = set()
        for pattern in self.include:
            found.update(self.root.glob(pattern))
        return sorted(
            p for p in found if p.suffix in RASTER_SUFFIXES and not p.name.startswith(".")
        )

    def files(self) -> list[Path]:
        """Raster files under the root matching ``include`` (or a STAC input's assets), sorted."""
        if self.stac is not None:
            # Imported here: the STAC reader builds on the scanner, which imports this module.
            from eo_mmcl.catalog.stac import stac_asset_files

            return stac_asset_files(self.stac)
        return [p for p in self._candidates() if p.is_file()]

    def dead_links(self) -> list[tuple[Path, str]]:
        """Raster-named symbolic links that reach no file, each with the reason.

        Returns:
            ``(path, reason)`` per symlink loop or broken link, sorted by path.
        """
        dead: list[tuple[Path, str]] = []
        if self.stac is not None:
            return dead  # a STAC item's missing asset file is rejected by the STAC reader
        for path in self._candidates():
            if not path.is_symlink() or path.is_file():
                continue
            try:
                path.resolve(strict=True)
                loop = False
            except RuntimeError:  # how Python 3.11 reports a loop
                loop = True
            except OSError as err:
                loop = err.errno == errno.ELOOP
            target = os.readlink(path)
            reason = (
                "symbolic link loop: the link never reaches a file"
                if loop
                else f"broken symbolic link: its target {target} is not a file"
            )
            dead.append((path, reason))
        return dead


#: Rules for a plain folder: eo_mmcl's own tags first (the simulator writes them), then file
#: names that follow the Sentinel conventions (S1A_/S1B_/S2A_..., a YYYYMMDD date).
DEFAULT_RULES: tuple[SourceRule, ...] = (
    SourceRule(
        name="eo_mmcl tags",
        pattern=re.compile(r".*"),
        bands="descriptions",
        tags={
            "sensor": "SENSOR",
            "role": "ROLE",
            "product": "PRODUCT",
            "task": "TASK",
            "scene": "SCENE_ID",
            "datetime": "ACQUISITION_DATETIME",
        },
        require_tags=("SENSOR", "ACQUISITION_DATETIME"),
    ),
    SourceRule(
        name="sentinel-1 file name",
        pattern=re.compile(r"(?:^|[/_.-])(?P<sensor>S1)[AB]?[_.-].*?(?P<date>20\d{6})"),
        bands="descriptions",
        values={"role": "image"},
    ),
    SourceRule(
        name="sentinel-2 file name",
        pattern=re.compile(r"(?:^|[/_.-])(?P<sensor>S2)[AB]?[_.-].*?(?P<date>20\d{6})"),
        bands="descriptions",
        values={"role": "image"},
    ),
)


def folder_source(path: str | Path) -> SourceDefinition:
    """A source for a plain folder, read with :data:`DEFAULT_RULES`.

    Args:
        path: The folder.

    Returns:
        The source definition.
    """
    root = Path(path).resolve()
    return SourceDefinition(name=root.name, root=root, rules=DEFAULT_RULES)


def _rule_from_dict(raw: dict[str, Any], where: str) -> SourceRule:
    known = {"name", "pattern", "bands", "band_order", "tags", "require_tags", *FIELDS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
    if "pattern" not in raw:
        raise ConfigError(f"{where}: 'pattern' is required")
    try:
        pattern = re.compile(str(raw["pattern"]))
    except re.error as err:
        raise ConfigError(f"{where}: invalid pattern {raw['pattern']!r}: {err}") from err
    bands = raw.get("bands", "descriptions")
    if isinstance(bands, list):
        bands = tuple(str(b) for b in bands)
    elif bands not in ("descriptions", "pattern"):
        raise ConfigError(
            f"{where}: 'bands' must be a list, 'descriptions' or 'pattern', got {bands!r}"
        )
    if bands == "pattern" and "band" not in pattern.groupindex:
        raise ConfigError(f"{where}: 'bands: pattern' needs a (?P<band>...) group in 'pattern'")
    values = {k: raw[k] for k in FIELDS if k in raw}
    role = values.get("role")
    if role is not None and role not in ROLES:
        raise ConfigError(f"{where}: role must be one of {ROLES}, got {role!r}")
    tags = raw.get("tags", {}) or {}
    if not isinstance(tags, dict) or any(k not in FIELDS for k in tags):
        raise ConfigError(f"{where}: 'tags' must map fields {FIELDS} to tag names")
    return SourceRule(
        name=str(raw.get("name", raw["pattern"])),
        pattern=pattern,
        bands=bands,
        band_order=tuple(str(b) for b in raw.get("band_order", ())),
        values=values,
        tags={str(k): str(v) for k, v in tags.items()},
        require_tags=tuple(str(t) for t in raw.get("require_tags", ())),
    )


def load_source_definition(path: str | Path, root: str | Path | None = None) -> SourceDefinition:
    """Load a source definition YAML.

    Args:
        path: The YAML file.
        root: Override the definition's root folder.

    Returns:
        The source definition, with its root resolved (relative roots are relative to the YAML).

    Raises:
        ConfigError: If the file is not valid YAML or misses or misnames keys.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read source definition: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a source definition must be a mapping")
    known = {"name", "description", "root", "include", "rules"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known keys are {sorted(known)}")
    for key in ("name", "root", "rules"):
        if key not in raw and not (key == "root" and root is not None):
            raise ConfigError(f"{path}: '{key}' is required")
    rules_raw = raw["rules"]
    if not isinstance(rules_raw, list) or not rules_raw:
        raise ConfigError(f"{path}: 'rules' must be a non-empty list")
    rules: list[SourceRule] = []
    for i, rule in enumerate(rules_raw):
        if not isinstance(rule, dict):
            raise ConfigError(f"{path}: rules[{i}] must be a mapping")
        rules.append(_rule_from_dict(rule, f"{path}: rules[{i}]"))
    root_path = Path(root) if root is not None else Path(str(raw["root"]))
    if root is None and not root_path.is_absolute():
        root_path = path.parent / root_path
    include = raw.get("include", ["**/*"])
    if isinstance(include, str):
        include = [include]
    return SourceDefinition(
        name=str(raw["name"]),
        root=root_path.resolve(),
        rules=tuple(rules),
        include=tuple(str(i) for i in include),
        description=str(raw.get("description", "")),
    )


def resolve_source(spec: str | Path, root: str | Path | None = None) -> SourceDefinition:
    """Turn a command-line SOURCE into a source definition.

    A SOURCE is a folder (scanned with the default rules, or read as STAC input when it holds
    STAC item JSON files), a ``.yaml`` source definition, or STAC input: an item, catalog or
    collection JSON, or a stac-geoparquet file (:mod:`eo_mmcl.catalog.stac`).

    Args:
        spec: The SOURCE.
        root: Root override for YAML definitions.

    Returns:
        The source definition.

    Raises:
        ConfigError: If ``spec`` is none of these.
    """
    from eo_mmcl.catalog.stac import folder_has_stac_items, is_stac_file, stac_source

    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: source definition not found")
        return load_source_definition(path, root=root)
    if path.is_dir():
        return stac_source(path) if folder_has_stac_items(path) else folder_source(path)
    if path.is_file() and is_stac_file(path):
        return stac_source(path)
    if path.exists():
        raise ConfigError(
            f"{path}: a SOURCE must be a folder, a .yaml source definition or STAC input "
            "(an item, catalog or collection JSON, or a stac-geoparquet file)"
        )
    raise ConfigError(f"{path}: no such folder, source definition or STAC file")
