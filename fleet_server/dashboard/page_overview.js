// Fleet overview: online / offline / alerts firing / models in use, kept live by the event stream.

import { call, optional } from "./api.js";
import { on } from "./live.js";
import { h, clear, badge } from "./dom.js";

export function modelOf(reported) {
  const m = reported && reported.model;
  return m ? `${m.name}:${m.version}` : null;
}

export function firing(alerts) {
  return alerts.filter((a) => (a.state ?? a.status) === "firing").length;
}

export async function render(main) {
  const [devices, alerts] = await Promise.all([call("/devices"), optional("/alerts?state=firing")]);
  const byId = new Map(devices.map((d) => [d.id, d]));
  let alertList = alerts;
  const stats = h("div", { class: "stats" });
  const models = h("div", { class: "card" });
  const feed = h("tbody");
  clear(main, h("h1", {}, "Fleet overview"), stats, h("div", { class: "two" }, models,
    h("div", { class: "card" }, h("h2", {}, "Live activity"),
      h("table", { id: "activity" }, h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "device"),
        h("th", {}, "what"))), feed))));

  function stat(id, label, value, href, note) {
    return h("a", { class: "stat", href, id }, h("div", { class: "label" }, label),
             h("div", { class: "value", dataset: { value: String(value) } }, String(value)),
             note ? h("div", { class: "na" }, note) : null);
  }

  function draw() {
    const all = [...byId.values()];
    const online = all.filter((d) => d.online).length;
    clear(stats,
      stat("stat-online", "Online", online, "#/devices?status=online"),
      stat("stat-offline", "Offline", all.length - online, "#/devices?status=offline"),
      alertList === null ? stat("stat-alerts", "Alerts firing", "n/a", "#/alerts", "not available on this server")
                         : stat("stat-alerts", "Alerts firing", firing(alertList), "#/alerts"),
      stat("stat-models", "Models in use", new Set(all.map((d) => modelOf(d.reported)).filter(Boolean)).size,
           "#/devices"));
    const counts = new Map();
    for (const d of all) {
      const m = modelOf(d.reported) || "(none reported)";
      counts.set(m, (counts.get(m) || 0) + 1);
    }
    clear(models, h("h2", {}, "Models in use"), h("table", { id: "models-in-use" },
      h("thead", {}, h("tr", {}, h("th", {}, "model"), h("th", {}, "devices"))),
      h("tbody", {}, [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([m, n]) =>
        h("tr", {}, h("td", {}, m), h("td", {}, String(n)))))));
  }

  function note(deviceId, what) {
    feed.prepend(h("tr", {}, h("td", { class: "muted" }, new Date().toLocaleTimeString()),
      h("td", {}, deviceId ? h("a", { href: `#/devices/${encodeURIComponent(deviceId)}` }, deviceId) : "—"), h("td", {}, what)));
    while (feed.children.length > 15) feed.lastChild.remove();
  }

  draw();
  const offs = [
    on("device.status", (e) => {
      const d = byId.get(e.device_id);
      if (!d) { refreshDevices(); return; }
      d.status = e.status.state;
      d.online = e.status.state === "online";
      draw();
      note(e.device_id, badge(d.status));
    }),
    on("device.reported", (e) => {
      const d = byId.get(e.device_id);
      if (d) { d.reported = e.reported; draw(); }
    }),
    on("alert", (e) => {
      note(e.device_id, `alert ${e.rule ?? e.name ?? ""} ${e.state ?? ""}`);
      refreshAlerts();
    }),
    on("command.reply", (e) => note(e.device_id, `command reply (${e.reply && e.reply.ok ? "ok" : "error"})`)),
    on("rollout.progress", (e) => note(null, `rollout ${e.id} moved`)),
    on("resync", () => { refreshDevices(); refreshAlerts(); }),
  ];

  async function refreshDevices() {
    const fresh = await call("/devices");
    byId.clear();
    for (const d of fresh) byId.set(d.id, d);
    draw();
  }
  async function refreshAlerts() {
    alertList = await optional("/alerts?state=firing");
    draw();
  }
  return () => offs.forEach((off) => off());
}
