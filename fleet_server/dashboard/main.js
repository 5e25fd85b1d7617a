// The dashboard's entry: login, the header, and a hash router (#/, #/devices, #/devices/ID, #/alerts, #/rollouts).
// Each page's render(main, params) returns a cleanup function that drops its live listeners.

import { auth, login, logout, call } from "./api.js";
import { connect, disconnect } from "./live.js";
import { h, clear } from "./dom.js";
import * as overview from "./page_overview.js";
import * as devices from "./page_devices.js";
import * as device from "./page_device.js";
import * as alerts from "./page_alerts.js";
import * as rollouts from "./page_rollouts.js";

const ROUTES = [
  [/^#?\/?$/, overview, "overview"],
  [/^#\/devices\/?(?:\?.*)?$/, devices, "devices"],
  [/^#\/devices\/([^/?]+)$/, device, "devices"],
  [/^#\/alerts\/?$/, alerts, "alerts"],
  [/^#\/rollouts\/?$/, rollouts, "rollouts"],
];
const main = document.getElementById("main");
let cleanup = null;

function showLogin(message) {
  disconnect();
  for (const id of ["nav", "whoami", "logout", "live-state"]) document.getElementById(id).hidden = true;
  const input = h("input", { id: "login-key", type: "password", placeholder: "efk_…", autocomplete: "off" });
  const error = h("p", { id: "login-error", class: "error" }, message || "");
  const form = h("form", { class: "card login", id: "login-form" },
    h("h1", {}, "Sign in"),
    h("label", { for: "login-key" }, "API key"), input,
    h("button", { class: "action primary", id: "login-submit", type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "The key is kept in this browser tab only (sessionStorage) and is forgotten when the tab closes."),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await login(input.value.trim());
      await start();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  clear(main, form);
  input.focus();
}

async function start() {
  const me = auth.me || (auth.me = await call("/whoami"));
  document.getElementById("nav").hidden = false;
  const who = document.getElementById("whoami");
  who.hidden = false;
  who.textContent = `${me.name} (${me.role})`;
  who.dataset.role = me.role;
  document.getElementById("logout").hidden = false;
  connect(document.getElementById("live-state"));
  route();
}

async function route() {
  if (!auth.me) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const hash = location.hash || "#/";
  for (const [pattern, page, nav] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === nav);
    clear(main);
    try {
      cleanup = (await page.render(main, match.slice(1).map(decodeURIComponent))) || null;
    } catch (err) {
      if (err.status === 401) { logout(); showLogin(err.message); return; }
      clear(main, h("p", { class: "error" }, `This page could not be shown: ${err.message}`));
    }
    return;
  }
  clear(main, h("p", {}, "No such page. ", h("a", { href: "#/" }, "Overview")));
}

document.getElementById("logout").addEventListener("click", () => { logout(); showLogin(); });
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  if (!auth.key) { showLogin(); return; }
  try { await start(); } catch (err) { logout(); showLogin(err.message); }
});
