// The coordinator's REST API and live feed, from the page's own origin.
// The bearer token lives in sessionStorage (this tab only, gone when it closes), never in a URL.

const KEY = "drift.token";
export const API = "/api/v1";

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export async function api(method, path, body, { raw = false, form = false } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (form) {
    payload = new URLSearchParams(body);
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch(API + path, { method, headers, body: payload, credentials: "same-origin" });
  if (r.status === 401 && t) onUnauthorized();
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  return r.json();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

export async function login(username, password) {
  const out = await api("POST", "/auth/token", { username, password }, { form: true });
  setToken(out.access_token);
  return out;
}

/** A job's live feed (docs/security.md, "WebSocket credentials"): the token goes as a
 *  subprotocol beside drift.v1, which the server accepts without echoing the credential. */
export function jobFeed(jobId, onMessage, onClose = () => {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${API}/ws/jobs/${jobId}`,
    ["drift.v1", `bearer.${token()}`]);
  ws.onmessage = (ev) => {
    try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); }
  };
  ws.onclose = (ev) => onClose(ev);
  return ws;
}

/** An authenticated download (the token cannot go in a link): fetched, then saved. */
export async function download(path, filename) {
  const r = await api("GET", path, undefined, { raw: true });
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url; a.download = filename;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
