// The coverage overlay: which parts of a season are built (its blocks) and which are served on the
// fly, a hatched look where nothing is drawn because the zoom is below the on-the-fly minimum, and
// pulsing squares over tiles that are being composited on the fly right now.
//
// One overlay per season on the map: the left (main) one in the panes 'coverage' and 'pending', the
// right one of the compare mode in 'coverageRight' and 'pendingRight', clipped by the swipe bar
// like the season panes.

const L = window.L;
const WORLD = [[-85, -180], [-85, 180], [85, 180], [85, -180]];
const HATCH_ID = "s2-hatch-not-built";
const DOTS_ID = "s2-dots-on-the-fly";

function styles(hatchId, dotsId) {
  return {
    built: { color: "#22c55e", weight: 1.5, opacity: 0.9, fillColor: "#22c55e", fillOpacity: 0.04 },
    empty: { color: "#94a3b8", weight: 1, dashArray: "4 4", opacity: 0.9, fillOpacity: 0 },
    onTheFly: { color: "#f59e0b", weight: 0, fillColor: `url(#${dotsId})`, fillOpacity: 1 },
    notBuilt: { color: "#64748b", weight: 0, fillColor: `url(#${hatchId})`, fillOpacity: 1 },
    pending: { color: "#f59e0b", weight: 2, dashArray: "6 6", fillColor: "#f59e0b", fillOpacity: 0.15,
               className: "cov-pending", interactive: false },
  };
}

/** Rings ([[lat, lon], ...]) of the outer boundaries of a GeoJSON Polygon or MultiPolygon. */
function outerRings(geometry) {
  if (!geometry) return [];
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  return polygons.map((rings) => rings[0].map(([lon, lat]) => [lat, lon]));
}

function insideRing(ring, lat, lon) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [yi, xi] = ring[i];
    const [yj, xj] = ring[j];
    if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function svgNode(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/** The fills of the overlay: hatching for 'not built at this zoom', amber stipple for 'on the fly'. */
function addPatterns(svg, hatchId, dotsId) {
  if (svg.querySelector(`#${hatchId}`)) return;
  const hatch = svgNode("pattern", { id: hatchId, width: 10, height: 10, patternUnits: "userSpaceOnUse",
                                     patternTransform: "rotate(45)" });
  hatch.append(svgNode("rect", { width: 10, height: 10, fill: "rgba(30, 41, 59, 0.35)" }),
               svgNode("line", { x1: 0, y1: 0, x2: 0, y2: 10, stroke: "rgba(226, 232, 240, 0.55)", "stroke-width": 3 }));
  const dots = svgNode("pattern", { id: dotsId, width: 8, height: 8, patternUnits: "userSpaceOnUse" });
  dots.append(svgNode("rect", { width: 8, height: 8, fill: "rgba(245, 158, 11, 0.04)" }),
              svgNode("circle", { cx: 4, cy: 4, r: 1, fill: "rgba(245, 158, 11, 0.75)" }));
  const defs = svgNode("defs", {});
  defs.append(hatch, dots);
  svg.prepend(defs);
}

export class Coverage {
  /** ``side``: 'left' (the main season, also outside compare mode) or 'right' (the compared season). */
  constructor(map, { minZoom, side = "left" }) {
    this.map = map;
    this.minZoom = minZoom ?? 0;
    const right = side === "right";
    this.panes = { coverage: right ? "coverageRight" : "coverage", pending: right ? "pendingRight" : "pending" };
    map.createPane(this.panes.coverage).style.zIndex = right ? 381 : 380;
    map.createPane(this.panes.pending).style.zIndex = right ? 391 : 390;
    this.patternIds = right ? [`${HATCH_ID}-right`, `${DOTS_ID}-right`] : [HATCH_ID, DOTS_ID];
    this.style = styles(...this.patternIds);
    this.renderer = L.svg({ pane: this.panes.coverage, padding: 0.5 });
    this.overlay = L.layerGroup();
    this.pendingLayer = L.layerGroup().addTo(map);
    this.pending = new Map(); // img key -> rectangle
    this.rings = [];
    this.outside = null;
    this.blocks = null;
    this.visible = false;
    map.on("zoomend", () => this._styleOutside());
  }

  /** Show ``footprint`` (the season's built area, GeoJSON geometry or null) and its ``blocks`` (FeatureCollection). */
  setSeason(footprint, blocks) {
    this.overlay.clearLayers();
    this.rings = outerRings(footprint);
    this.outside = L.polygon([WORLD, ...this.rings], { renderer: this.renderer, interactive: false,
                                                       className: "cov-outside" });
    this.blocks = L.geoJSON(blocks || { type: "FeatureCollection", features: [] }, {
      renderer: this.renderer,
      interactive: false,
      style: (feature) => ({ ...(feature.properties.status === "built" ? this.style.built : this.style.empty),
                             className: `cov-block cov-block-${feature.properties.status}` }),
    });
    this.overlay.addLayer(this.outside).addLayer(this.blocks);
    this._styleOutside();
  }

  setVisible(visible) {
    this.visible = visible;
    if (visible) {
      this.overlay.addTo(this.map);
      if (this.renderer._container) addPatterns(this.renderer._container, ...this.patternIds);
      this._styleOutside();
    } else {
      this.overlay.remove();
    }
  }

  /** The state of the area outside the built blocks at the current zoom: 'on-the-fly' or 'not-built'. */
  outsideState() {
    return Math.round(this.map.getZoom()) >= this.minZoom ? "on-the-fly" : "not-built";
  }

  _styleOutside() {
    if (!this.outside) return;
    const state = this.outsideState();
    this.outside.setStyle(state === "on-the-fly" ? this.style.onTheFly : this.style.notBuilt);
    const path = this.outside.getElement();
    if (path) path.dataset.state = state;
  }

  isBuilt(lat, lon) {
    return this.rings.some((ring) => insideRing(ring, lat, lon));
  }

  /** Whether the tile at ``coords`` will (at least partly) be composited on the fly. */
  composesOnTheFly(coords) {
    if (coords.z < this.minZoom) return false;
    const nw = this.map.unproject([coords.x * 256, coords.y * 256], coords.z);
    const se = this.map.unproject([(coords.x + 1) * 256, (coords.y + 1) * 256], coords.z);
    const points = [[nw.lat, nw.lng], [nw.lat, se.lng], [se.lat, se.lng], [se.lat, nw.lng],
                    [(nw.lat + se.lat) / 2, (nw.lng + se.lng) / 2]];
    return !points.every(([lat, lon]) => this.isBuilt(lat, lon));
  }

  /** Mark a tile being composited on the fly (until `tileDone` with the same ``key``). */
  tileStarted(key, coords) {
    if (!this.composesOnTheFly(coords)) return false;
    const nw = this.map.unproject([coords.x * 256, coords.y * 256], coords.z);
    const se = this.map.unproject([(coords.x + 1) * 256, (coords.y + 1) * 256], coords.z);
    const box = L.rectangle(L.latLngBounds(nw, se), { ...this.style.pending, pane: this.panes.pending });
    this.pending.set(key, box);
    this.pendingLayer.addLayer(box);
    return true;
  }

  tileDone(key) {
    const box = this.pending.get(key);
    if (box) {
      this.pendingLayer.removeLayer(box);
      this.pending.delete(key);
    }
  }

  clearPending() {
    this.pendingLayer.clearLayers();
    this.pending.clear();
  }

  onTheFlyPending() {
    return this.pending.size;
  }
}
