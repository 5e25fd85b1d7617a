// The API client: the key lives in this tab's sessionStorage (gone when the tab closes; never localStorage,
// which every later visitor of this browser profile could read).

const KEY = "edgefleet.apiKey";
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
  get missing() { return this.status === 404 || this.status === 405; }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  me: null,
};

export async function call(path, { method = "GET", body, key = auth.key } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const detail = (data && data.detail) || response.statusText || `HTTP ${response.status}`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

// For endpoints this server may not have (alerts, commands on an older server): null when the route is missing.
// A missing route answers 404 "Not Found" or 405; a missing device answers 404 with a sentence naming it.
export function isMissingRoute(err) {
  return err instanceof ApiError && (err.status === 405 || (err.status === 404 && err.message === "Not Found"));
}

export async function optional(path, options) {
  try {
    return await call(path, options);
  } catch (err) {
    if (isMissingRoute(err)) return null;
    throw err;
  }
}

export async function login(key) {
  const me = await call("/whoami", { key });
  auth.key = key;
  auth.me = me;
  return me;
}

export function logout() {
  auth.key = null;
  auth.me = null;
}
