"""s2seasons compositor: seasonal cloud-free Sentinel-2 percentile mosaics (the library)."""

__version__ = "0.1.0"
