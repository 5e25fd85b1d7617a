// A small hand-written SVG line chart for one metric over time: no library, redrawn on each new point.

const NS = "http://www.w3.org/2000/svg";
const W = 300, H = 70, PAD = 4;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

export class LineChart {
  constructor(metric, { capacity = 120 } = {}) {
    this.metric = metric;
    this.capacity = capacity;
    this.points = []; // [time ms, value]
    this.el = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
                           "data-metric": metric, role: "img" });
    this.draw();
  }

  add(ts, value) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return;
    const t = new Date(ts).getTime();
    if (this.points.length && t <= this.points[this.points.length - 1][0]) return; // a replay or duplicate
    this.points.push([t, Number(value)]);
    if (this.points.length > this.capacity) this.points.shift();
    this.draw();
  }

  draw() {
    this.el.replaceChildren();
    this.el.dataset.points = String(this.points.length);
    if (this.points.length < 2) {
      const text = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
      text.textContent = this.points.length ? "waiting for more data…" : "no data";
      this.el.append(text);
      return;
    }
    const t0 = this.points[0][0], t1 = this.points[this.points.length - 1][0];
    const values = this.points.map((p) => p[1]);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    lo = Math.min(lo, 0) === 0 && lo >= 0 ? 0 : lo; // anchor non-negative metrics at zero
    const x = (t) => PAD + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * PAD);
    const y = (v) => H - PAD - ((v - lo) / (hi - lo)) * (H - 2 * PAD);
    const line = this.points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    this.el.append(svg("path", { class: "area", d: `${line} L${x(t1).toFixed(1)},${H - PAD} L${x(t0).toFixed(1)},${H - PAD} Z` }));
    this.el.append(svg("path", { class: "line", d: line, "vector-effect": "non-scaling-stroke" }));
  }
}
