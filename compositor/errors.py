"""One error hierarchy for the library; `app.errors` maps it to HTTP status codes.

Every message says what the user should change. The library never raises HTTP errors.
"""

from __future__ import annotations


class CompositorError(Exception):
    """Base of every error the library raises on purpose."""


class InvalidInputError(CompositorError, ValueError):
    """A value a user gave (season, band, bbox, statistic, setting) is not acceptable."""


class SeasonNotFoundError(InvalidInputError):
    """A season name that is neither a calendar season nor a configured custom one."""


class BandNotFoundError(InvalidInputError):
    """A band name outside blue, green, red, nir, swir16, swir22."""


class InvalidBBoxError(InvalidInputError):
    """A bounding box that is malformed or outside the output grid."""


class CatalogError(CompositorError):
    """A STAC catalog could not be read, or one of its items is malformed."""


class CatalogUnavailableError(CatalogError):
    """A STAC API or catalog file could not be reached."""


class MalformedItemError(CatalogError):
    """A STAC item lacks what a Sentinel-2 L2A scene needs (assets, orbit, CRS...)."""


class SourceUnavailableError(CompositorError):
    """A scene file could not be opened or read (missing, truncated, corrupt)."""


class NoObservationsError(CompositorError):
    """No scene intersects the requested area and season."""


class BuildError(CompositorError):
    """A build could not be planned or run."""


class StorageError(CompositorError):
    """The output location (a folder or an object store) could not be read or written."""
