// Remote commands on the device page: buttons that POST /devices/{id}/commands and show the reply. A viewer
// key gets them disabled, with the reason; a server without the commands API shows them as not available.

import { call, auth } from "./api.js";
import { h, json } from "./dom.js";

export const COMMANDS = [
  ["snapshot", "Snapshot", {}],
  ["ping", "Ping", {}],
  ["get_logs", "Get logs", { lines: 50 }],
  ["get_config", "Get config", {}],
  ["restart_pipeline", "Restart pipeline", {}],
  ["restart_agent", "Restart agent", {}],
];
const COMMANDS_PATH = "/api/v1/devices/{device_id}/commands";
let hasCommands = null; // the server's schema says whether the commands route exists; asked once

export async function commandsAvailable() {
  if (hasCommands === null) {
    try {
      const schema = await (await fetch("/openapi.json")).json();
      hasCommands = Boolean(schema.paths && schema.paths[COMMANDS_PATH] && schema.paths[COMMANDS_PATH].post);
    } catch {
      hasCommands = false;
    }
  }
  return hasCommands;
}

// A base64 JPEG/PNG anywhere in a reply (the snapshot command's image), as a data URL, or null.
export function imageIn(value, depth = 0) {
  if (depth > 4 || value === null || value === undefined) return null;
  if (typeof value === "string") {
    if (value.startsWith("data:image/")) return value;
    if (value.startsWith("/9j/")) return `data:image/jpeg;base64,${value}`;
    if (value.startsWith("iVBORw0KGgo")) return `data:image/png;base64,${value}`;
    return null;
  }
  if (typeof value === "object") {
    for (const item of Object.values(value)) {
      const found = imageIn(item, depth + 1);
      if (found) return found;
    }
  }
  return null;
}

function shorten(value) {
  return JSON.parse(JSON.stringify(value, (k, v) => (typeof v === "string" && v.length > 200
    ? `${v.slice(0, 60)}… (${v.length} characters)` : v)));
}

export async function commandPanel(deviceId, onImage) {
  const available = await commandsAvailable();
  const me = auth.me;
  let reason = null;
  if (!me.can_operate) reason = `Your key "${me.name}" has the ${me.role} role: sending commands needs operator or admin.`;
  else if (!available) reason = "Commands: not available on this server (no commands API).";
  const output = h("pre", { id: "command-output", hidden: true });
  const status = h("p", { class: "muted", id: "command-status" });
  const buttons = COMMANDS.map(([name, label, args]) => h("button", {
    class: "action", dataset: { command: name }, disabled: Boolean(reason), title: reason || `send ${name}`,
    onclick: () => send(name, args),
  }, label));

  async function send(name, args) {
    buttons.forEach((b) => { b.disabled = true; });
    status.className = "muted";
    status.textContent = `${name}: waiting for the device…`;
    try {
      const reply = await call(`/devices/${encodeURIComponent(deviceId)}/commands`, { method: "POST", body: { name, args } });
      status.textContent = `${name}: replied`;
      output.hidden = false;
      output.textContent = json(shorten(reply));
      const image = imageIn(reply);
      if (image) onImage(image);
    } catch (err) {
      status.textContent = `${name} failed: ${err.message}`;
      status.className = "error";
    } finally {
      buttons.forEach((b) => { b.disabled = Boolean(reason); });
    }
  }

  return h("div", { class: "card", id: "commands" }, h("h2", {}, "Commands"),
    reason ? h("p", { class: "reason", id: "command-reason" }, reason) : null,
    h("div", { class: "commands" }, buttons), status, output);
}
