"""See a running s2seasons server as a QGIS user does: headless QGIS renders its layers to PNG files.

Run with the Python that has QGIS (Debian: ``apt-get install python3-qgis``; ``/usr/bin/python3``):

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qgis_check.py --base http://127.0.0.1:8000 \
        --bbox 11.34,47.86,11.42,47.94 --out qgis-check

1. **WMS-T**: reads ``/wms`` GetCapabilities, adds the ``--wms-layer`` layer as QGIS' Data Source Manager
   does (type ``wmst`` with the capabilities' time extent, temporal updates on), then renders the map with
   the temporal controller's range set to each ``--season`` in turn (``wmst_<season>.png``).
2. **XYZ**: renders every ``--xyz NAME=QUERY`` (e.g. ``medoid=preset=true-colour&statistic=medoid``) of
   ``--xyz-season`` through ``/seasons/{season}/tiles/WebMercatorQuad/{z}/{x}/{y}.png?QUERY`` as an
   XYZ connection (``xyz_<NAME>.png``).

Prints one JSON object (what QGIS drew: mean RGB and the share of drawn pixels per picture; whether the
WMS-T maps of the seasons differ) and exits 1 when a layer is invalid, a picture is empty, or two
seasons of the WMS-T layer render the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

WMS_NS = "{http://www.opengis.net/wms}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--bbox", required=True, help="map extent west,south,east,north in degrees")
    parser.add_argument("--out", required=True, type=Path, help="folder for the rendered PNG files")
    parser.add_argument("--season", action="append", default=[],
                        help="a season the WMS-T layer is rendered for (repeat; its dates set the temporal range)")
    parser.add_argument("--wms-layer", default="true-colour", help="WMS layer (a preset) to render, default true-colour")
    parser.add_argument("--xyz", action="append", default=[], metavar="NAME=QUERY",
                        help="an XYZ layer to render: a name and the tile URL's query (repeat)")
    parser.add_argument("--xyz-season", default=None, help="season of the XYZ layers (default: the first --season)")
    parser.add_argument("--size", type=int, default=512, help="picture width and height in pixels (default 512)")
    parser.add_argument("--sheet", type=Path, default=None,
                        help="also write one PNG with every rendered picture side by side, captioned")
    return parser.parse_args(argv)


def season_dates(base: str, season: str) -> tuple[str, str]:
    with urllib.request.urlopen(f"{base}/seasons/{season}", timeout=60) as answer:
        record = json.load(answer)
    return record["start_date"], record["end_date"]


def time_extent(base: str) -> str:
    with urllib.request.urlopen(f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities", timeout=60) as answer:
        root = ET.parse(answer).getroot()
    dimension = root.find(f".//{WMS_NS}Layer/{WMS_NS}Dimension[@name='time']")
    if dimension is None or not (dimension.text or "").strip():
        raise SystemExit("the WMS capabilities have no time dimension")
    return dimension.text.strip()


def write_sheet(path: Path, pictures: list[tuple[str, str]], size: int, columns: int = 3) -> None:
    """The rendered pictures in a grid on white, each under its caption (drawn by Qt, as QGIS draws)."""
    from qgis.PyQt.QtCore import QRect, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    caption_px, margin = 28, 8
    rows = (len(pictures) + columns - 1) // columns
    cols = min(columns, len(pictures))
    sheet = QImage(cols * (size + margin) + margin, rows * (size + caption_px + margin) + margin,
                   QImage.Format_ARGB32)
    sheet.fill(QColor(255, 255, 255))
    painter = QPainter(sheet)
    font = QFont()
    font.setPixelSize(14)
    painter.setFont(font)
    for k, (caption, file) in enumerate(pictures):
        x = margin + (k % columns) * (size + margin)
        y = margin + (k // columns) * (size + caption_px + margin)
        painter.drawText(QRect(x, y, size, caption_px), Qt.AlignLeft | Qt.AlignVCenter, caption)
        painter.drawImage(x, y + caption_px, QImage(file))
    painter.end()
    sheet.save(str(path))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsDateTimeRange,
                           QgsMapRendererSequentialJob, QgsMapSettings, QgsProject, QgsRasterLayer, QgsRectangle)
    from qgis.PyQt.QtCore import QDate, QDateTime, QSize, QTime, Qt
    from qgis.PyQt.QtGui import QColor

    base = args.base.rstrip("/")
    west, south, east, north = (float(v) for v in args.bbox.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], False)
    app.initQgis()
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    to_mercator = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), mercator, QgsProject.instance())
    extent = to_mercator.transformBoundingBox(QgsRectangle(west, south, east, north))

    def render(layer, path: Path, time_range=None) -> dict:
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(mercator)
        settings.setExtent(extent)
        settings.setOutputSize(QSize(args.size, args.size))
        settings.setBackgroundColor(QColor(0, 0, 0, 0))
        if time_range is not None:
            settings.setIsTemporal(True)
            settings.setTemporalRange(time_range)
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        image.save(str(path))
        drawn, sums = 0, [0, 0, 0]
        step = max(1, args.size // 128)
        samples = 0
        for y in range(0, image.height(), step):
            for x in range(0, image.width(), step):
                color = image.pixelColor(x, y)
                samples += 1
                if color.alpha() > 0:
                    drawn += 1
                    sums[0] += color.red()
                    sums[1] += color.green()
                    sums[2] += color.blue()
        mean = [round(s / drawn, 1) if drawn else None for s in sums]
        return {"file": str(path), "drawn_share": round(drawn / samples, 3), "mean_rgb": mean,
                "errors": [e.message for e in job.errors()]}

    report: dict = {"wmst": {}, "xyz": {}}
    failures: list[str] = []
    if args.season:
        extent_text = time_extent(base)
        uri = urllib.parse.urlencode({
            "contextualWMSLegend": "0", "crs": "EPSG:3857", "dpiMode": "7", "featureCount": "10",
            "format": "image/png", "layers": args.wms_layer, "styles": "", "url": f"{base}/wms",
            "type": "wmst", "timeDimensionExtent": extent_text, "allowTemporalUpdates": "true",
            "temporalSource": "provider",
        }, safe=":/,")
        layer = QgsRasterLayer(uri, f"s2seasons {args.wms_layer}", "wms")
        if not layer.isValid():
            failures.append(f"WMS-T layer invalid: {layer.error().summary()}")
        else:
            report["wmst"]["temporal"] = layer.temporalProperties().isActive()
            for season in args.season:
                first, last = season_dates(base, season)
                start = QDateTime(QDate.fromString(first, Qt.ISODate), QTime(0, 0), Qt.UTC)
                end = QDateTime(QDate.fromString(last, Qt.ISODate), QTime(23, 59, 59), Qt.UTC)
                result = render(layer, args.out / f"wmst_{season}.png", QgsDateTimeRange(start, end))
                report["wmst"][season] = result
                if result["drawn_share"] == 0:
                    failures.append(f"WMS-T {season}: nothing drawn ({result['errors']})")
            means = [report["wmst"][s]["mean_rgb"] for s in args.season]
            report["wmst"]["seasons_differ"] = len({json.dumps(m) for m in means}) == len(means)
            if len(args.season) > 1 and not report["wmst"]["seasons_differ"]:
                failures.append(f"WMS-T: seasons {args.season} render the same")
    xyz_season = args.xyz_season or (args.season[0] if args.season else None)
    for spec in args.xyz:
        name, _, query = spec.partition("=")
        if not xyz_season:
            raise SystemExit("--xyz needs --xyz-season or a --season")
        url = f"{base}/seasons/{xyz_season}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{query}"
        uri = "type=xyz&zmin=0&zmax=18&url=" + urllib.parse.quote(url, safe=":/{}?=,")
        layer = QgsRasterLayer(uri, name, "wms")
        if not layer.isValid():
            failures.append(f"XYZ {name} invalid: {layer.error().summary()}")
            continue
        result = render(layer, args.out / f"xyz_{name.replace(' ', '-')}.png")
        result["url"] = url
        report["xyz"][name] = result
        if result["drawn_share"] == 0:
            failures.append(f"XYZ {name}: nothing drawn ({result['errors']})")
    report["failures"] = failures
    if args.sheet is not None:
        captions = [(f"WMS-T {args.wms_layer}: {season}", report["wmst"][season]["file"])
                    for season in args.season if season in report["wmst"]]
        captions += [(f"XYZ {name}", result["file"]) for name, result in report["xyz"].items()]
        write_sheet(args.sheet, captions, args.size)
        report["sheet"] = str(args.sheet)
    print(json.dumps(report, indent=1))
    app.exitQgis()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
