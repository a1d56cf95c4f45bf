"""Where each pass's data end: irregular swath edges and datatakes that end mid-tile.

A pass sees the ground points whose view coordinates (``reference_orbit.view_coordinates``:
seconds after the ANX ``t``, off-nadir angle ``theta`` in deg, east > 0) fall inside its
swath. Shaped on the real partial footprints (``tests/data/real-footprints``):

- The edges sit at ``theta = +/- HALF_ANGLE_DEG`` (147 km from the track at 48 N), moved as a
  whole by a per-pass cross-track offset (orbit control and attitude: real edges of one track
  scatter by about +/-0.8 km from date to date) and zig-zagging along track between random
  nodes every ``EDGE_NODE_S`` seconds (a few hundred metres: the real edges are that straight
  at the km scale).
- On some passes (``CUT_FRACTION``) the datatake ends, or starts, inside the region: an
  along-track cut, across the swath but staggered by detector. MSI's 12 detectors, side by side
  across the swath, sit in two staggered rows, so odd and even detectors stop
  ``CUT_STAGGER_S`` apart (about 3 km on the ground), each with its own jitter, and the cut
  slants a little across the swath, as the real datatake ends do (0.5-1 s across the swath).

Everything is deterministic from (seed, pass key).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compositor.testing.synthetic.noise import seeded_rng
from compositor.testing.synthetic.reference_orbit import HALF_ANGLE_DEG

N_DETECTORS = 12
EDGE_OFFSET_SD_DEG = 0.045  # per-pass cross-track offset: 0.65 km
EDGE_OFFSET_MAX_DEG = 0.09
EDGE_ZIGZAG_SD_DEG = 0.025  # node offsets of the zig-zag: 0.36 km
EDGE_NODE_S = 2.0  # 13.6 km along track between nodes
CUT_FRACTION = 0.15
CUT_STAGGER_S = 0.45  # odd detectors stop this much after even ones (3 km along track)
CUT_JITTER_S = 0.08
CUT_SLOPE_MAX_S_PER_DEG = 0.05  # up to 1 s across the swath
_PAD_S = 20.0


@dataclass(frozen=True)
class DatatakeCut:
    """An along-track end of the data: the datatake ends (data only before it) or starts (only after).

    A point at ``(t, theta)`` seen by detector ``k`` is before the cut when
    ``t < time_s + slope_s_per_deg * theta + detector_shift_s[k]``.
    """

    time_s: float
    ends: bool  # True: the datatake ends here (data north of it, sensed earlier); False: it starts here
    slope_s_per_deg: float
    detector_shift_s: tuple[float, ...]

    def time_at(self, theta_deg: np.ndarray) -> np.ndarray:
        """The cut's time (s after the ANX) across the swath, by detector, at off-nadir angles (deg)."""
        k = detector_index(theta_deg)
        return self.time_s + self.slope_s_per_deg * np.asarray(theta_deg) + np.asarray(self.detector_shift_s)[k]


@dataclass(frozen=True)
class PassSwath:
    """The data extent of one pass in view coordinates (times s after the ANX, angles deg)."""

    relative_orbit: int
    key: str
    offset_deg: float  # cross-track shift of the whole swath, east > 0
    node_t0_s: float
    node_step_s: float
    west_nodes_deg: tuple[float, ...]  # zig-zag of the west edge at node_t0_s + k * node_step_s
    east_nodes_deg: tuple[float, ...]
    cut: DatatakeCut | None
    half_angle_deg: float = HALF_ANGLE_DEG

    def edge_deg(self, side: str, t_s: np.ndarray) -> np.ndarray:
        """Off-nadir angle (deg) of the ``"west"`` or ``"east"`` data edge at times ``t_s``."""
        nodes = self.west_nodes_deg if side == "west" else self.east_nodes_deg
        times = self.node_t0_s + self.node_step_s * np.arange(len(nodes))
        sign = -1.0 if side == "west" else 1.0
        return sign * self.half_angle_deg + self.offset_deg + np.interp(np.asarray(t_s, np.float64), times, nodes)

    def covers(self, t_s: np.ndarray, theta_deg: np.ndarray) -> np.ndarray:
        """Whether points at view coordinates (``t_s``, ``theta_deg``) hold data on this pass."""
        t = np.asarray(t_s, np.float64)
        theta = np.asarray(theta_deg, np.float64)
        inside = (theta >= self.edge_deg("west", t)) & (theta <= self.edge_deg("east", t))
        if self.cut is not None:
            before = t < self.cut.time_at(theta - self.offset_deg)
            inside &= before if self.cut.ends else ~before
        return inside

    def to_json(self) -> dict:
        return asdict(self)


def detector_index(theta_deg: np.ndarray, half_angle_deg: float = HALF_ANGLE_DEG) -> np.ndarray:
    """The detector (0..11, west to east) that sees off-nadir angle ``theta_deg`` (deg)."""
    width = 2 * half_angle_deg / N_DETECTORS
    return np.clip(np.floor((np.asarray(theta_deg) + half_angle_deg) / width), 0, N_DETECTORS - 1).astype(np.int64)


def pass_swath(seed: int, relative_orbit: int, key: str, time_range_s: tuple[float, float]) -> PassSwath:
    """The data extent of the pass ``key`` over a region seen between ``time_range_s`` (s after the ANX)."""
    rng = seeded_rng(seed, "swath", key)
    t0, t1 = float(time_range_s[0]) - _PAD_S, float(time_range_s[1]) + _PAD_S
    n_nodes = int(np.ceil((t1 - t0) / EDGE_NODE_S)) + 1
    offset = float(np.clip(rng.normal(0.0, EDGE_OFFSET_SD_DEG), -EDGE_OFFSET_MAX_DEG, EDGE_OFFSET_MAX_DEG))
    west = tuple(np.round(rng.normal(0.0, EDGE_ZIGZAG_SD_DEG, n_nodes), 6).tolist())
    east = tuple(np.round(rng.normal(0.0, EDGE_ZIGZAG_SD_DEG, n_nodes), 6).tolist())
    cut = None
    if rng.random() < CUT_FRACTION:
        lo, hi = time_range_s
        at = lo + (0.2 + 0.6 * rng.random()) * (hi - lo)  # inside the region, away from its ends
        stagger = np.where(np.arange(N_DETECTORS) % 2 == 1, CUT_STAGGER_S, 0.0)
        shifts = stagger + rng.normal(0.0, CUT_JITTER_S, N_DETECTORS)
        cut = DatatakeCut(
            time_s=round(float(at), 4),
            ends=bool(rng.random() < 0.5),
            slope_s_per_deg=round(float(rng.uniform(-1, 1) * CUT_SLOPE_MAX_S_PER_DEG), 5),
            detector_shift_s=tuple(np.round(shifts, 4).tolist()),
        )
    return PassSwath(relative_orbit, key, round(offset, 6), round(t0, 4), EDGE_NODE_S, west, east, cut)


def pass_swath_from_json(data: dict) -> PassSwath:
    """The inverse of ``PassSwath.to_json``."""
    cut = data.get("cut")
    return PassSwath(
        relative_orbit=int(data["relative_orbit"]),
        key=data["key"],
        offset_deg=float(data["offset_deg"]),
        node_t0_s=float(data["node_t0_s"]),
        node_step_s=float(data["node_step_s"]),
        west_nodes_deg=tuple(data["west_nodes_deg"]),
        east_nodes_deg=tuple(data["east_nodes_deg"]),
        cut=None if cut is None else DatatakeCut(
            float(cut["time_s"]), bool(cut["ends"]), float(cut["slope_s_per_deg"]), tuple(cut["detector_shift_s"])
        ),
        half_angle_deg=float(data["half_angle_deg"]),
    )


def write_swaths(path: Path, swaths: Sequence[PassSwath]) -> int:
    """Write the data extent of every pass of a season as JSON (``swaths.json``); returns the bytes."""
    meta = {
        "geometry": "view coordinates of compositor.testing.synthetic.reference_orbit: t = s after the pass's ANX, "
        "theta = off-nadir angle in deg (east > 0); a pass holds data where PassSwath.covers(t, theta)",
        "half_angle_deg": HALF_ANGLE_DEG,
        "passes": [swath.to_json() for swath in swaths],
    }
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path.stat().st_size


def read_swaths(path: Path) -> list[PassSwath]:
    """The passes written by ``write_swaths``."""
    return [pass_swath_from_json(p) for p in json.loads(Path(path).read_text())["passes"]]
