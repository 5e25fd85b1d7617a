// Alerts: firing first, then resolved; refreshed when the stream says one changed. Shows "not available" on a
// server without the alerts API.

import { optional } from "./api.js";
import { on } from "./live.js";
import { h, clear, badge, notAvailable, fmtTime } from "./dom.js";

function sorted(alerts) {
  const state = (a) => a.state ?? a.status ?? "";
  return alerts.slice().sort((a, b) => (state(a) === "firing" ? 0 : 1) - (state(b) === "firing" ? 0 : 1));
}

export async function render(main) {
  const body = h("div", { class: "card", id: "alerts" });
  clear(main, h("h1", {}, "Alerts"), body);

  async function draw() {
    const alerts = await optional("/alerts");
    if (alerts === null) { clear(body, notAvailable("Alerts")); return; }
    if (!alerts.length) { clear(body, h("p", { class: "muted" }, "No alerts.")); return; }
    clear(body, h("table", { id: "alert-table" }, h("thead", {}, h("tr", {},
      ["state", "rule", "device", "message", "since"].map((c) => h("th", {}, c)))),
      h("tbody", {}, sorted(alerts).map((a) => {
        const device = a.device_id ?? a.device;
        return h("tr", { dataset: { alert: String(a.id ?? "") } },
          h("td", {}, badge(a.state ?? a.status ?? "?")), h("td", {}, a.rule ?? a.name ?? a.kind ?? ""),
          h("td", {}, device ? h("a", { href: `#/devices/${encodeURIComponent(device)}` }, device) : "—"),
          h("td", {}, a.message ?? a.summary ?? ""), h("td", { class: "muted" }, fmtTime(a.since ?? a.started_at ?? a.ts)));
      }))));
  }

  await draw();
  const offs = [on("alert", draw), on("resync", draw)];
  return () => offs.forEach((off) => off());
}
