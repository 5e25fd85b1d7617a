// One device: live charts (fps, latency, CPU, temperature), desired vs reported twin, the latest snapshot,
// command buttons with their replies, the device's alerts and its audit trail.

import { call, optional } from "./api.js";
import { on } from "./live.js";
import { h, clear, badge, notAvailable, fmtNumber, fmtTime, ago, json } from "./dom.js";
import { LineChart } from "./chart.js";
import { commandPanel } from "./commands.js";
import { modelOf } from "./page_overview.js";

const METRICS = [
  ["fps", "FPS", "", 1],
  ["latency_ms_p95", "Latency p95", "ms", 1],
  ["cpu_percent", "CPU", "%", 0],
  ["temperature_c", "Temperature", "°C", 1],
];
const HISTORY = 120;

function twinRows(twin) {
  const d = twin.desired || {}, r = twin.reported || {};
  const rows = [
    ["model", modelOf(d) || "—", modelOf(r) || "—"],
    ["camera", d.camera ?? "—", r.camera ?? "—"],
    ["revision", String(twin.desired_revision), r.desired_revision ?? "—"],
  ];
  // Highlight what is asked for and not (yet) there; "—" desired means the device's own default.
  return rows.map(([k, want, have]) => h("tr", { class: want !== "—" && String(want) !== String(have) ? "diff" : "" },
    h("th", {}, k), h("td", {}, String(want)), h("td", {}, String(have))));
}

function metricCard([key, label, unit]) {
  const chart = new LineChart(key, { capacity: HISTORY });
  const value = h("span", { class: "value" }, "—");
  const card = h("div", { class: "card metric", dataset: { metric: key } },
    h("div", { class: "head" }, h("span", { class: "muted" }, label), h("span", {}, value, h("span", { class: "unit" }, unit))),
    chart.el);
  return { key, card, chart, value };
}

function alertsTable(alerts) {
  if (alerts === null) return notAvailable("Alerts");
  if (!alerts.length) return h("p", { class: "muted" }, "No alerts for this device.");
  return h("table", {}, h("tbody", {}, alerts.map((a) => h("tr", {},
    h("td", {}, badge(a.state ?? a.status ?? "?")), h("td", {}, a.rule ?? a.name ?? a.kind ?? ""),
    h("td", {}, a.message ?? a.summary ?? ""), h("td", { class: "muted" }, fmtTime(a.since ?? a.started_at ?? a.ts))))));
}

export async function render(main, [id]) {
  const path = `/devices/${encodeURIComponent(id)}`;
  const [device, telemetry, audit] = await Promise.all([
    call(path), call(`${path}/telemetry?limit=${HISTORY}`), call(`/audit?target=${encodeURIComponent(id)}&limit=20`)]);
  const statusEl = h("span", { id: "device-status" });
  const seenEl = h("span", { class: "muted", id: "device-seen" });
  const metrics = METRICS.map(metricCard);
  const twinCard = h("div", { class: "card", id: "twin" });
  const snapshot = h("div", { class: "card snapshot", id: "snapshot" }, h("h2", {}, "Latest snapshot"),
    h("p", { class: "muted", id: "snapshot-empty" }, "No snapshot yet: use the Snapshot command."));
  const alertsCard = h("div", { class: "card", id: "device-alerts" }, h("h2", {}, "Alerts"));
  const commands = await commandPanel(id, (src) => {
    clear(snapshot, h("h2", {}, "Latest snapshot"), h("img", { id: "snapshot-img", src, alt: `snapshot from ${id}` }),
      h("p", { class: "muted" }, `taken ${new Date().toLocaleTimeString()}`));
  });

  function showStatus(d) {
    clear(statusEl, badge(d.online ? "online" : d.status));
    statusEl.dataset.status = d.online ? "online" : d.status;
    seenEl.textContent = `last seen ${ago(d.last_seen)} · agent ${d.agent_version || "?"}`;
  }
  function showTelemetry(t) {
    for (const m of metrics) {
      m.chart.add(t.ts, t[m.key]);
      m.value.textContent = fmtNumber(t[m.key], METRICS.find((x) => x[0] === m.key)[3]);
    }
  }
  async function showTwin() {
    const twin = await call(`${path}/twin`);
    clear(twinCard, h("h2", {}, "Twin: desired vs reported ",
        twin.in_sync === null ? "" : h("span", { class: `badge ${twin.in_sync ? "online" : "pending"}`, id: "twin-sync" },
          twin.in_sync ? "in sync" : "not in sync yet")),
      h("table", { id: "twin-table" }, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "desired"), h("th", {}, "reported"))),
        h("tbody", {}, twinRows(twin))),
      h("div", { class: "two" },
        h("div", {}, h("h2", {}, `desired (revision ${twin.desired_revision})`), h("pre", { id: "twin-desired" }, json(twin.desired))),
        h("div", {}, h("h2", {}, "reported"), h("pre", { id: "twin-reported" }, json(twin.reported)))));
  }
  async function showAlerts() {
    const alerts = await optional(`/alerts?device_id=${encodeURIComponent(id)}`);
    clear(alertsCard, h("h2", {}, "Alerts"), alertsTable(alerts));
  }

  clear(main,
    h("h1", {}, device.name || id, " ", statusEl), h("p", {}, h("code", {}, id), " ", seenEl),
    h("div", { class: "metrics" }, metrics.map((m) => m.card)),
    h("div", { class: "two" }, twinCard, h("div", {}, commands, snapshot)),
    h("div", { class: "two" }, alertsCard, h("div", { class: "card", id: "device-audit" }, h("h2", {}, "Audit trail"),
      audit.length ? h("table", {}, h("tbody", {}, audit.map((e) => h("tr", {},
        h("td", { class: "muted" }, fmtTime(e.ts)), h("td", {}, e.action), h("td", {}, e.actor)))))
        : h("p", { class: "muted" }, "Nothing recorded for this device."))));
  showStatus(device);
  telemetry.slice().reverse().forEach(showTelemetry);
  const twinAndAlerts = Promise.all([showTwin(), showAlerts()]);

  // Listening starts before the twin and alerts have loaded, so nothing that happens meanwhile is missed.
  const mine = (fn) => (e) => { if (e.device_id === id) fn(e); };
  const offs = [
    on("device.status", mine((e) => {
      device.status = e.status.state;
      device.online = e.status.state === "online";
      device.last_seen = e.status.ts;
      showStatus(device);
    })),
    on("device.telemetry", mine((e) => { device.last_seen = e.telemetry.ts; showTelemetry(e.telemetry); showStatus(device); })),
    on("device.reported", mine(() => showTwin())),
    on("device.desired", mine(() => showTwin())),
    on("alert", mine(() => showAlerts())),
    on("resync", async () => { Object.assign(device, await call(path)); showStatus(device); showTwin(); }),
  ];
  await twinAndAlerts;
  return () => offs.forEach((off) => off());
}
