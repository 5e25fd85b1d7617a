// The device list: filter by status, search by id, name, tag or model; status and fps update live.

import { call } from "./api.js";
import { on } from "./live.js";
import { h, clear, badge, fmtNumber, ago } from "./dom.js";
import { modelOf } from "./page_overview.js";

const TELEMETRY_PRELOAD = 50; // devices whose last fps is fetched up front; the rest fill in from the stream

function matches(d, status, text) {
  if (status !== "all" && (d.online ? "online" : "offline") !== status) return false;
  if (!text) return true;
  const hay = [d.id, d.name, modelOf(d.reported), ...Object.entries(d.tags || {}).map(([k, v]) => `${k}=${v}`)]
    .filter(Boolean).join(" ").toLowerCase();
  return text.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

export async function render(main) {
  const devices = await call("/devices");
  const byId = new Map(devices.map((d) => [d.id, d]));
  const fps = new Map();
  const query = new URLSearchParams((location.hash.split("?")[1]) || "");
  const status = h("select", { id: "filter-status" }, ["all", "online", "offline"].map((s) =>
    h("option", { value: s, selected: s === (query.get("status") || "all") }, s)));
  const search = h("input", { id: "filter-search", type: "search", placeholder: "search id, name, tag=value, model" });
  const count = h("span", { class: "muted", id: "device-count" });
  const tbody = h("tbody");
  clear(main, h("h1", {}, "Devices"), h("div", { class: "filters" }, status, search, count),
    h("div", { class: "card" }, h("table", { id: "device-table" }, h("thead", {}, h("tr", {},
      ["device", "name", "status", "fps", "latency p95 ms", "model", "in sync", "last seen", "tags"]
        .map((c) => h("th", {}, c)))), tbody)));

  function row(d) {
    const t = fps.get(d.id);
    return h("tr", { class: "clickable", dataset: { device: d.id },
                     onclick: () => { location.hash = `#/devices/${encodeURIComponent(d.id)}`; } },
      h("td", {}, h("a", { href: `#/devices/${encodeURIComponent(d.id)}` }, d.id)),
      h("td", {}, d.name || ""),
      h("td", { class: "status" }, badge(d.online ? "online" : d.status)),
      h("td", { class: "fps" }, t ? fmtNumber(t.fps) : "—"),
      h("td", { class: "latency" }, t ? fmtNumber(t.latency_ms_p95) : "—"),
      h("td", {}, modelOf(d.reported) || "—"),
      h("td", {}, d.in_sync === null ? "—" : d.in_sync ? "yes" : "no"),
      h("td", { class: "muted", title: d.last_seen || "" }, ago(d.last_seen)),
      h("td", {}, Object.entries(d.tags || {}).map(([k, v]) => h("span", { class: "badge" }, `${k}=${v}`))));
  }

  function draw() {
    const shown = [...byId.values()].filter((d) => matches(d, status.value, search.value.trim()));
    clear(tbody, shown.map(row));
    count.textContent = `${shown.length} of ${byId.size}`;
  }

  status.addEventListener("change", draw);
  search.addEventListener("input", draw);
  draw();

  // Listen before anything else is awaited: an event that comes while the page still loads must not be lost.
  // A fetch that was in flight when a status event came must not put the older status back (statusSeq).
  const statusSeq = new Map();
  let seq = 0;
  const offs = [
    on("device.status", (e) => {
      const d = byId.get(e.device_id);
      if (!d) return void refresh();
      d.status = e.status.state;
      d.online = d.status === "online";
      d.last_seen = e.status.ts;
      statusSeq.set(e.device_id, ++seq);
      draw();
    }),
    on("device.telemetry", (e) => {
      fps.set(e.device_id, e.telemetry);
      const d = byId.get(e.device_id);
      if (d) d.last_seen = e.telemetry.ts;
      const tr = tbody.querySelector(`tr[data-device="${CSS.escape(e.device_id)}"]`);
      if (tr && d) tr.replaceWith(row(d));
    }),
    on("device.reported", (e) => reload(e.device_id)),
    on("device.desired", (e) => reload(e.device_id)),
    on("resync", () => refresh()),
  ];
  function keepNewerStatus(fresh, asked) {
    const known = byId.get(fresh.id);
    if (known && statusSeq.get(fresh.id) !== asked.get(fresh.id)) {
      Object.assign(fresh, { status: known.status, online: known.online, last_seen: known.last_seen });
    }
    byId.set(fresh.id, fresh);
  }
  async function reload(id) {
    const asked = new Map(statusSeq);
    const d = await call(`/devices/${encodeURIComponent(id)}`).catch(() => null);
    if (d) { keepNewerStatus(d, asked); draw(); }
  }
  async function refresh() {
    const asked = new Map(statusSeq);
    for (const d of await call("/devices")) keepNewerStatus(d, asked);
    draw();
  }

  await Promise.all(devices.slice(0, TELEMETRY_PRELOAD).map(async (d) => {
    const last = await call(`/devices/${encodeURIComponent(d.id)}/telemetry?limit=1`).catch(() => []);
    if (last.length && !fps.has(d.id)) fps.set(d.id, last[0]);  // the stream may already have given a newer one
  }));
  draw();
  return () => offs.forEach((off) => off());
}
