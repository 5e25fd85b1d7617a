// Rollouts with per-wave progress. The stream's rollout.progress and device.reported events (download progress
// comes from the devices' reported twins) trigger a refresh, at most once a second; a slow poll covers the rest.

import { call, auth } from "./api.js";
import { on } from "./live.js";
import { h, clear, badge, fmtTime } from "./dom.js";

const SHOWN = 10;
const POLL_MS = 5000;

function bar(done, total, failed) {
  const pct = total ? Math.round((100 * done) / total) : 0;
  const fill = h("span");
  fill.style.width = `${pct}%`;
  return h("div", { class: `bar ${failed ? "failed" : ""}`, title: `${done} of ${total} done` }, fill);
}

function waveRow(w, current) {
  const total = w.devices.length;
  return h("tr", { dataset: { wave: String(w.wave) } },
    h("td", {}, w.wave === 0 ? "canary" : `wave ${w.wave}`, w.wave === current ? " ◀" : ""),
    h("td", {}, bar(w.done, total, w.failed)),
    h("td", { class: "progress" }, `${w.done}/${total} done`, w.failed ? `, ${w.failed} failed` : ""),
    h("td", {}, w.devices.map((d) => h("a", { class: `badge ${d.state}`, href: `#/devices/${encodeURIComponent(d.device_id)}`,
      title: d.reason || d.state }, `${d.device_id.slice(0, 8)} ${d.state}${d.progress != null && d.state === "updating" ? ` ${Math.round(d.progress)}%` : ""}`))));
}

function actions(r, refresh) {
  const allowed = { running: ["pause", "abort"], paused: ["resume", "abort"] }[r.state] || [];
  const can = auth.me.can_operate;
  return allowed.map((verb) => h("button", {
    class: "action", disabled: !can, title: can ? verb : `${auth.me.role} keys cannot ${verb} rollouts (operator needed)`,
    onclick: async () => { await call(`/rollouts/${r.id}/${verb}`, { method: "POST" }).catch((e) => alert(e.message)); refresh(); },
  }, verb));
}

export async function render(main) {
  const body = h("div", { id: "rollouts" });
  clear(main, h("h1", {}, "Rollouts"), body);
  let pending = null;

  async function draw() {
    const list = (await call("/rollouts")).slice(0, SHOWN);
    if (!list.length) { clear(body, h("div", { class: "card muted" }, "No rollouts yet.")); return; }
    const details = await Promise.all(list.map((r) => call(`/rollouts/${r.id}`)));
    clear(body, details.map((r) => h("div", { class: "card", dataset: { rollout: String(r.id) } },
      h("h2", {}, `#${r.id} ${r.model.name}:${r.model.version} → ${r.target} `, badge(r.state), " ",
        h("span", { class: "muted" }, `${Math.round(r.progress)}% · started ${fmtTime(r.created_at)}`)),
      r.reason ? h("p", { class: "reason" }, r.reason) : null,
      h("table", {}, h("tbody", {}, r.wave_list.map((w) => waveRow(w, r.current_wave)))),
      h("div", { class: "commands" }, actions(r, draw)))));
  }
  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; draw(); }, 1000);
  }

  await draw();
  const timer = setInterval(draw, POLL_MS);
  const offs = [on("rollout.progress", soon), on("device.reported", soon), on("resync", soon)];
  return () => { clearInterval(timer); clearTimeout(pending); offs.forEach((off) => off()); };
}
