// Side-by-side comparison with a swipe bar: the left panes show left of the bar, the right panes right
// of it (each season's tiles and its coverage overlay). The panes are clipped with CSS clip-path in
// layer-point coordinates (the panes move with the map), recomputed whenever the map moves or the
// bar is dragged. Under each season's name a note says how that season is served at this zoom.

const L = window.L;
const STEP = 0.02;

export class Swipe {
  /**
   * ``leftPanes``/``rightPanes``: names of the panes clipped to each side of the bar.
   * ``onChange(split)`` is told the bar's final position (share of the map width) after a drag.
   */
  constructor(map, { leftPanes, rightPanes, onChange }) {
    this.map = map;
    this.left = leftPanes.map((name) => map.getPane(name));
    this.right = rightPanes.map((name) => map.getPane(name));
    this.onChange = onChange;
    this.split = 0.5;
    this.enabled = false;
    this.root = document.getElementById("swipe");
    this.bar = document.getElementById("swipe-bar");
    this.leftLabel = document.getElementById("swipe-left");
    this.rightLabel = document.getElementById("swipe-right");
    this.leftNote = document.getElementById("swipe-left-note");
    this.rightNote = document.getElementById("swipe-right-note");
    this._update = () => this.update();
    L.DomEvent.disableClickPropagation(this.root);
    this.bar.addEventListener("pointerdown", (event) => this._drag(event));
    this.bar.addEventListener("keydown", (event) => this._key(event));
  }

  enable(leftName, rightName, split) {
    this.split = split;
    this.leftLabel.textContent = `◀ ${leftName}`;
    this.rightLabel.textContent = `${rightName} ▶`;
    if (!this.enabled) {
      this.enabled = true;
      this.root.hidden = false;
      this.map.on("move zoom viewreset resize zoomend moveend", this._update);
    }
    this.update();
  }

  disable() {
    if (!this.enabled) return;
    this.enabled = false;
    this.root.hidden = true;
    this.map.off("move zoom viewreset resize zoomend moveend", this._update);
    for (const pane of [...this.left, ...this.right]) pane.style.clipPath = "";
  }

  /** The notes under the seasons' names: ``{state: 'built'|'on-the-fly'|'not-built', text}`` per side. */
  describe(left, right) {
    for (const [node, note] of [[this.leftNote, left], [this.rightNote, right]]) {
      const key = document.createElement("i");
      key.className = `key key-${note.state.replace(/-/g, "")}`;
      node.replaceChildren(key, document.createTextNode(note.text));
      node.dataset.state = note.state;
    }
  }

  update() {
    if (!this.enabled) return;
    const size = this.map.getSize();
    const nw = this.map.containerPointToLayerPoint([0, 0]);
    const se = this.map.containerPointToLayerPoint(size);
    const x = nw.x + size.x * this.split;
    const left = `polygon(${nw.x}px ${nw.y}px, ${x}px ${nw.y}px, ${x}px ${se.y}px, ${nw.x}px ${se.y}px)`;
    const right = `polygon(${x}px ${nw.y}px, ${se.x}px ${nw.y}px, ${se.x}px ${se.y}px, ${x}px ${se.y}px)`;
    for (const pane of this.left) pane.style.clipPath = left;
    for (const pane of this.right) pane.style.clipPath = right;
    this.bar.style.left = `${(this.split * 100).toFixed(2)}%`;
    this.bar.setAttribute("aria-valuenow", String(Math.round(this.split * 100)));
  }

  _setFromClientX(clientX) {
    const rect = this.map.getContainer().getBoundingClientRect();
    this.split = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    this.update();
  }

  _drag(event) {
    event.preventDefault();
    event.stopPropagation();
    this.bar.setPointerCapture(event.pointerId);
    this.root.classList.add("dragging");
    const move = (e) => this._setFromClientX(e.clientX);
    const stop = () => {
      this.bar.removeEventListener("pointermove", move);
      this.bar.removeEventListener("pointerup", stop);
      this.bar.removeEventListener("pointercancel", stop);
      this.root.classList.remove("dragging");
      this.onChange(this.split);
    };
    this.bar.addEventListener("pointermove", move);
    this.bar.addEventListener("pointerup", stop);
    this.bar.addEventListener("pointercancel", stop);
  }

  _key(event) {
    const delta = { ArrowLeft: -STEP, ArrowRight: STEP }[event.key];
    if (delta === undefined) return;
    event.preventDefault();
    this.split = Math.min(1, Math.max(0, this.split + delta));
    this.update();
    this.onChange(this.split);
  }
}
