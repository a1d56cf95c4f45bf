// A Leaflet tile layer that fetches its tiles, so that it can read what the server says about each:
// where its pixels came from (X-S2Seasons-Source: built | on-the-fly | mixed | not-built), whether
// part of it was left empty below the on-the-fly zoom (X-S2Seasons-Not-Built), and the message of an
// error. Each <img> keeps its tile URL in data-url and the source in data-source.
//
// Events besides Leaflet's: 'tilestart' {coords, url, img}, 'tileretry' {url, attempt, img},
// 'tileend' {url, source, notBuilt, error, aborted, img}, 'pendingchange' {pending}.

const L = window.L;
let sequence = 0;

// The server answers 503 (with Retry-After) when its on-the-fly pool is full or a composite ran past
// its time budget (it goes on and is kept): such tiles are asked again, sooner than Retry-After
// says for the first tries, and never later than MAX_RETRY_WAIT_S.
const RETRY_STATUSES = new Set([429, 503]);
const MAX_RETRIES = 6;
const MAX_RETRY_WAIT_S = 8;

export function retryDelayMs(retryAfter, attempt) {
  const asked = Number.parseFloat(retryAfter);
  const backoff = 2 ** attempt;
  const seconds = Math.min(Number.isFinite(asked) && asked > 0 ? asked : backoff, backoff, MAX_RETRY_WAIT_S);
  return seconds * 1000;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    }, { once: true });
  });
}

export const SOURCE_HEADER = "X-S2Seasons-Source";
export const NOT_BUILT_HEADER = "X-S2Seasons-Not-Built";

export const SeasonTileLayer = L.TileLayer.extend({
  initialize(url, options) {
    L.TileLayer.prototype.initialize.call(this, url, options);
    this._inflight = new Map(); // tile key -> {controller, img}
  },

  pending() {
    return this._inflight.size;
  },

  createTile(coords, done) {
    const img = document.createElement("img");
    img.alt = "";
    img.setAttribute("role", "presentation");
    const url = this.getTileUrl(coords);
    const key = String(++sequence);
    img.dataset.url = url;
    img.dataset.key = key;
    img.dataset.z = String(coords.z);
    const controller = new AbortController();
    this._inflight.set(key, { controller, img });
    this.fire("tilestart", { coords, url, img });
    this.fire("pendingchange", { pending: this._inflight.size });
    img.addEventListener("load", () => done(null, img), { once: true });
    img.addEventListener("error", () => done(new Error(`tile ${url} could not be decoded`), img), { once: true });
    this._load(img, url, coords, key, controller, done);
    return img;
  },

  async _load(img, url, coords, key, controller, done) {
    let source = null;
    let notBuilt = null;
    let error = null;
    try {
      let response = await fetch(url, { signal: controller.signal });
      for (let attempt = 0; RETRY_STATUSES.has(response.status) && attempt < MAX_RETRIES; attempt += 1) {
        img.dataset.retries = String(attempt + 1);
        this.fire("tileretry", { url, attempt, img });
        await sleep(retryDelayMs(response.headers.get("Retry-After"), attempt), controller.signal);
        response = await fetch(url, { signal: controller.signal });
      }
      source = response.headers.get(SOURCE_HEADER);
      notBuilt = response.headers.get(NOT_BUILT_HEADER);
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
        throw new Error(`${response.status}: ${detail}`);
      }
      const blob = await response.blob();
      if (controller.signal.aborted) return;
      img.dataset.source = source || "";
      if (notBuilt) img.dataset.notBuilt = notBuilt;
      img.src = URL.createObjectURL(blob);
    } catch (err) {
      if (controller.signal.aborted) return;
      error = err.message || String(err);
      img.dataset.error = error;
      done(err, img);
    } finally {
      if (this._inflight.get(key)?.img === img) this._inflight.delete(key);
      if (!controller.signal.aborted) {
        this.fire("tileend", { coords, url, source, notBuilt, error, img });
      }
      this.fire("pendingchange", { pending: this._inflight.size });
    }
  },

  _forget(tile) {
    const key = tile?.dataset?.key;
    const entry = key && this._inflight.get(key);
    if (entry && entry.img === tile) {
      entry.controller.abort();
      this._inflight.delete(key);
      this.fire("tileend", { coords: null, url: tile.dataset.url, aborted: true, img: tile });
      this.fire("pendingchange", { pending: this._inflight.size });
    }
    if (tile?.src?.startsWith("blob:")) URL.revokeObjectURL(tile.src);
  },

  onAdd(map) {
    this.on("tileunload tileabort", this._onTileGone, this);
    L.TileLayer.prototype.onAdd.call(this, map);
  },

  onRemove(map) {
    this.off("tileunload tileabort", this._onTileGone, this);
    for (const { controller } of this._inflight.values()) controller.abort();
    this._inflight.clear();
    this.fire("pendingchange", { pending: 0 });
    L.TileLayer.prototype.onRemove.call(this, map);
  },

  _onTileGone(event) {
    this._forget(event.tile);
  },

  // Leaflet aborts loading images of another zoom by resetting their src, which a fetch does not
  // notice: abort the fetch and drop the tile as Leaflet would.
  _abortLoading() {
    for (const [key, entry] of Object.entries(this._tiles)) {
      const el = entry.el;
      if (entry.coords.z === this._tileZoom || this._inflight.get(el.dataset.key)?.img !== el) continue;
      this._forget(el);
      L.DomUtil.remove(el);
      delete this._tiles[key];
      this.fire("tileabort", { tile: el, coords: entry.coords });
    }
    L.TileLayer.prototype._abortLoading.call(this);
  },
});
