// The live event stream: a ticket (POST /events/ticket, with the key) opens GET /events?ticket=... The ticket
// is single use, so when the stream drops this asks for a new one rather than letting EventSource retry.

import { call } from "./api.js";

const KINDS = ["hello", "resync", "expired", "device.status", "device.telemetry", "device.reported",
               "device.desired", "command.reply", "alert", "rollout.progress"];
const listeners = new Map(); // kind -> Set(fn)
let source = null;
let retryTimer = null;
let stateEl = null;
let wanted = false;

export function on(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(fn);
  return () => listeners.get(kind).delete(fn);
}

function emit(kind, data) {
  for (const fn of listeners.get(kind) || []) {
    try { fn(data); } catch (err) { console.error(`listener for ${kind} failed`, err); }
  }
  for (const fn of listeners.get("*") || []) {
    try { fn(kind, data); } catch (err) { console.error("listener for * failed", err); }
  }
}

function showState(state, text) {
  if (!stateEl) return;
  stateEl.hidden = false;
  stateEl.className = `live-state ${state}`;
  stateEl.textContent = text;
  stateEl.dataset.state = state;
}

export async function connect(el) {
  stateEl = el;
  wanted = true;
  await open();
}

async function open() {
  clearTimeout(retryTimer);
  if (!wanted) return;
  let ticket;
  try {
    ticket = (await call("/events/ticket", { method: "POST" })).ticket;
  } catch (err) {
    showState("down", err.status === 401 ? "key refused" : "reconnecting…");
    if (err.status !== 401) retryTimer = setTimeout(open, 3000);
    return;
  }
  source = new EventSource(`/api/v1/events?ticket=${encodeURIComponent(ticket)}`);
  for (const kind of KINDS) {
    source.addEventListener(kind, (ev) => {
      let data = {};
      try { data = JSON.parse(ev.data); } catch { /* keep {} */ }
      if (kind === "hello") showState("live", "live");
      if (kind === "expired") { disconnect(); showState("down", "key revoked"); }
      emit(kind, data);
    });
  }
  source.onerror = () => {
    source.close();
    source = null;
    showState("down", "reconnecting…");
    retryTimer = setTimeout(open, 2000);
  };
}

export function disconnect() {
  wanted = false;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}
