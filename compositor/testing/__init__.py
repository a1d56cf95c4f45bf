"""Data and processes for tests, benchmarks and the demo: nothing of the algorithm imports this package.

* `synthetic`: a deterministic Earth-Search-like Sentinel-2 L2A archive, generated with its own models
  of orbits, clouds and metadata (never the compositor's: a generator must not share the model it tests).
* `planted`: small real COG scenes with chosen values and SCL classes, as `compositor.catalog.Scene` values.
* `demo`: the synthetic archive with part of a season built (``s2seasons demo``).
* `serving`: ``s2seasons serve`` in a child process on loopback, as users start it.
"""
