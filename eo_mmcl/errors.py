"""Exceptions that eo_mmcl raises for bad input; the CLI turns them into clear messages."""

from __future__ import annotations


class EoMmclError(Exception):
    """Base class of every error that eo_mmcl reports to a user (bad input, bad config)."""


class ConfigError(EoMmclError, ValueError):
    """A configuration value or a source definition is invalid."""


class SourceError(EoMmclError):
    """A data source is unusable as a whole (missing, empty, or yields nothing usable)."""


class NoPairsError(SourceError):
    """No Sentinel-1/Sentinel-2 pair satisfies the overlap and time-window constraints."""


class StoreIntegrityError(SourceError):
    """A chip store's chunks do not match its manifest (missing, altered or unexpected)."""


class UnverifiableStoreError(StoreIntegrityError):
    """A chip store's manifest records no digests (written before they were recorded)."""
