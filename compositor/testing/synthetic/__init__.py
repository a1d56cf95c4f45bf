"""A deterministic synthetic Sentinel-2 L2A archive (COGs + STAC ItemCollection) with its truth.

For tests and demos: ``generate_archive(out_dir)`` writes scenes shaped like Earth Search's
``sentinel-2-l2a`` over a region crossing two UTM zones and two relative orbits, and the
seasonal median clear-sky surface the composites should approach.
"""

from compositor.testing.synthetic.archive import DEFAULT_BBOX_4326, ArchiveSummary, generate_archive

__all__ = ["DEFAULT_BBOX_4326", "ArchiveSummary", "generate_archive"]
