"""STAC items shaped like Earth Search's ``sentinel-2-l2a`` ones (see the real sample item).

Variety the catalog reader must cope with, as in the real collection: most items key their
assets by common name (``blue``... ``scl``), some by band (``B02``... ``SCL``); only some carry
``sat:relative_orbit``, the others name the orbit only in ``s2:product_uri`` (``_R065_``); items
of baseline 04.00 and later mostly store reflectance * 10000 + 1000, but some have the offset
removed already (``earthsearch:boa_offset_applied``). ``raster:bands`` offset is -0.1 exactly
where the DN still carry the +1000.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from compositor.testing.synthetic.cogs import COG_MEDIA_TYPE
from compositor.testing.synthetic.noise import stable_fraction, stable_key
from compositor.testing.synthetic.schedule import Acquisition
from compositor.testing.synthetic.tiles import MgrsTile

COLLECTION = "sentinel-2-l2a"
# file stem, common-name key, title, centre wavelength (um), FWHM (um), nominal gsd (m), grid (1 = "10 m")
BAND_FILES = (
    ("B02", "blue", "Blue (band 2)", 0.49, 0.098, 10, 1),
    ("B03", "green", "Green (band 3)", 0.56, 0.045, 10, 1),
    ("B04", "red", "Red (band 4)", 0.665, 0.038, 10, 1),
    ("B08", "nir", "NIR 1 (band 8)", 0.842, 0.145, 10, 1),
    ("B11", "swir16", "SWIR 1 (band 11)", 1.61, 0.143, 20, 2),
    ("B12", "swir22", "SWIR 2 (band 12)", 2.19, 0.242, 20, 2),
)
_EXTENSIONS = (
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
)
_LICENSE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"
_SAT_EXTENSION = "https://stac-extensions.github.io/sat/v1.0.0/schema.json"
_SCL_PERCENTAGES = {
    "s2:dark_features_percentage": (2,),
    "s2:cloud_shadow_percentage": (3,),
    "s2:vegetation_percentage": (4,),
    "s2:not_vegetated_percentage": (5,),
    "s2:water_percentage": (6,),
    "s2:unclassified_percentage": (7,),
    "s2:medium_proba_clouds_percentage": (8,),
    "s2:high_proba_clouds_percentage": (9,),
    "s2:thin_cirrus_percentage": (10,),
    "s2:snow_ice_percentage": (11,),
}
CLOUD_CLASSES = (8, 9, 10)


def item_id(tile: MgrsTile, acq: Acquisition) -> str:
    """Like ``S2B_32UQU_20220203_0_L2A``."""
    return f"{acq.platform}_{tile.code}_{acq.date:%Y%m%d}_0_L2A"


def scene_dir(tile: MgrsTile, acq: Acquisition) -> str:
    """Relative directory of a scene's files, like ``scenes/32UQU/2022/2/3/S2B_32UQU_20220203_0_L2A``."""
    return f"scenes/{tile.code}/{acq.date.year}/{acq.date.month}/{acq.date.day}/{item_id(tile, acq)}"


def uses_band_keys(tile: MgrsTile, acq: Acquisition) -> bool:
    """Every third scene of a tile keys its assets ``B02``... instead of ``blue``..."""
    return (acq.revisit + stable_key(tile.code, "keys")) % 3 == 0


def carries_relative_orbit(tile: MgrsTile, acq: Acquisition) -> bool:
    """Every other scene of a tile has ``sat:relative_orbit``."""
    return (acq.revisit + stable_key(tile.code, "sat")) % 2 == 0


def offset_removed(tile: MgrsTile, acq: Acquisition, has_offset: bool) -> bool:
    """One in four scenes with the 04.00 offset has it already removed from the DN."""
    return has_offset and (acq.revisit + stable_key(tile.code, "boa")) % 4 == 0


def scl_properties(scl: np.ndarray) -> dict[str, float]:
    """``eo:cloud_cover`` and the ``s2:*_percentage`` properties from the SCL counts (% of data)."""
    counts = np.bincount(scl.ravel(), minlength=12).astype(np.float64)
    data = counts[1:].sum()
    props = {"s2:nodata_pixel_percentage": round(100.0 * counts[0] / counts.sum(), 6)}
    props["s2:saturated_defective_pixel_percentage"] = round(100.0 * counts[1] / data, 6)
    for name, classes in _SCL_PERCENTAGES.items():
        props[name] = round(100.0 * counts[list(classes)].sum() / data, 6)
    props["eo:cloud_cover"] = round(100.0 * counts[list(CLOUD_CLASSES)].sum() / data, 6)
    return props


def scene_item(
    tile: MgrsTile,
    acq: Acquisition,
    *,
    when: dt.datetime,
    sun: tuple[float, float],
    geometry: dict,
    bbox: tuple[float, float, float, float],
    pixel_size_m: float,
    n_pixels: int,
    boa_offset_applied: bool,
    has_offset: bool,
    scl_props: dict[str, float],
) -> dict:
    """The STAC item of one scene; asset hrefs are relative to the catalog's directory."""
    iid = item_id(tile, acq)
    baseline = acq.baseline
    generated = acq.datatake_time + dt.timedelta(minutes=75 + int(40 * stable_fraction(iid, "generation")))
    datatake = acq.datatake_time
    props = {
        "datetime": _iso(when),
        "platform": "sentinel-2" + acq.platform[-1].lower(),
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "proj:epsg": tile.epsg,
        "mgrs:utm_zone": tile.zone,
        "mgrs:latitude_band": tile.band,
        "mgrs:grid_square": tile.square,
        "grid:code": f"MGRS-{tile.code}",
        "view:sun_azimuth": round(sun[0], 6),
        "view:sun_elevation": round(sun[1], 6),
        "s2:processing_baseline": baseline,
        "s2:product_type": "S2MSI2A",
        "s2:product_uri": (
            f"{acq.platform}_MSIL2A_{datatake:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
            f"_R{acq.relative_orbit:03d}_T{tile.code}_{generated:%Y%m%dT%H%M%S}.SAFE"
        ),
        "s2:generation_time": _iso(generated),
        "s2:datatake_id": f"G{acq.platform}_{datatake:%Y%m%dT%H%M%S}_{acq.absolute_orbit:06d}_N{baseline}",
        "s2:datatake_type": "INS-NOBS",
        "s2:sequence": "0",
        "s2:degraded_msi_data_percentage": 0,
        "s2:reflectance_conversion_factor": round(_sun_distance_factor(acq.date), 12),
        "earthsearch:boa_offset_applied": boa_offset_applied,
        **scl_props,
    }
    extensions = list(_EXTENSIONS)
    if carries_relative_orbit(tile, acq):
        props["sat:relative_orbit"] = acq.relative_orbit
        props["sat:orbit_state"] = "descending"
        extensions.append(_SAT_EXTENSION)
    dn_offset = -0.1 if has_offset and not boa_offset_applied else 0.0
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": sorted(extensions),
        "id": iid,
        "collection": COLLECTION,
        "geometry": geometry,
        "bbox": [round(v, 9) for v in bbox],
        "properties": props,
        "links": [{"rel": "license", "href": _LICENSE}],
        "assets": _assets(tile, acq, pixel_size_m, n_pixels, dn_offset),
    }


def _assets(tile: MgrsTile, acq: Acquisition, pixel_size_m: float, n_pixels: int, dn_offset: float) -> dict:
    folder = scene_dir(tile, acq)
    band_keys = uses_band_keys(tile, acq)
    assets = {}
    for stem, common, title, centre, fwhm, gsd, factor in BAND_FILES:
        res = pixel_size_m * factor
        assets[stem if band_keys else common] = {
            "href": f"{folder}/{stem}.tif",
            "type": COG_MEDIA_TYPE,
            "title": f"{title} - {gsd}m",
            "eo:bands": [
                {
                    "name": common,
                    "common_name": common,
                    "description": title,
                    "center_wavelength": centre,
                    "full_width_half_max": fwhm,
                }
            ],
            "gsd": res,
            "proj:shape": [n_pixels // factor, n_pixels // factor],
            "proj:transform": list(tile.transform(res)),
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "bits_per_sample": 15,
                    "spatial_resolution": res,
                    "scale": 0.0001,
                    "offset": dn_offset,
                }
            ],
            "roles": ["data", "reflectance"],
        }
    res = pixel_size_m * 2
    assets["SCL" if band_keys else "scl"] = {
        "href": f"{folder}/SCL.tif",
        "type": COG_MEDIA_TYPE,
        "title": "Scene classification map (SCL)",
        "proj:shape": [n_pixels // 2, n_pixels // 2],
        "proj:transform": list(tile.transform(res)),
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}],
        "roles": ["data", "reflectance"],
    }
    return assets


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sun_distance_factor(day: dt.date) -> float:
    """The Earth-Sun distance correction (1 / d^2) of the L1C-to-reflectance conversion."""
    doy = day.timetuple().tm_yday
    return 1.0 / (1.0 - 0.01673 * np.cos(0.0172 * (doy - 4))) ** 2
