// The console's shell: log-in, theme, and a view per hash route (#/map, #/jobs, #/scan/<id>,
// #/result/<id>, #/admin). Plain ES modules served by the coordinator; no build step.
import { get, login, setToken, token, whenUnauthorized, ApiError } from "./api.js";
import { $ } from "./util.js";
import { MapView } from "./mapview.js";
import { JobsView } from "./jobs.js";
import { ScanView } from "./scan.js";
import { ResultView } from "./result.js";
import { AdminView } from "./admin.js";

const THEME_KEY = "drift.theme";

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_KEY, theme);
}
applyTheme(localStorage.getItem(THEME_KEY) ||
  (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
$("#theme").addEventListener("click", () => {
  applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  route();
});

const config = await (await fetch("/console/config.json")).json();
const views = {
  map: new MapView(config),
  jobs: new JobsView(),
  scan: new ScanView(),
  result: new ResultView(config),
  admin: new AdminView(),
};
let current = null;
let user = null;

/** For tests and benchmarks: the views and what they draw. */
window.drift = { views, config, ready: false };

function showSection(name) {
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a[data-view]")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

async function route() {
  if (current) views[current].hide();
  current = null;
  if (!token() || !user) {
    showSection("login");
    $("#nav").hidden = true;
    $("#logout").hidden = true;
    $("#whoami").textContent = "";
    $("#login-username").focus();
    window.drift.ready = true;
    return;
  }
  const [name = "map", arg] = location.hash.replace(/^#\/?/, "").split("/");
  const view = views[name] ? name : "map";
  showSection(view);
  current = view;
  window.drift.ready = false;
  try {
    await views[view].show(arg);
  } catch (e) {
    console.error(e);
  } finally {
    window.drift.ready = true;
    window.drift.view = view;
  }
}

async function whoami() {
  try {
    user = await get("/users/me");
    $("#whoami").textContent = `${user.username} (${user.role})`;
    $("#nav").hidden = false;
    $("#logout").hidden = false;
    document.querySelector('#nav a[data-view="admin"]').hidden = user.role !== "admin";
  } catch {
    user = null;
    setToken(null);
  }
}

whenUnauthorized(() => { setToken(null); user = null; route(); });

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("#login-error");
  err.textContent = "";
  const fd = new FormData(ev.target);
  try {
    await login(fd.get("username"), fd.get("password"));
    ev.target.reset();
    await whoami();
    if (!location.hash || location.hash === "#/login") location.hash = "#/map";
    await route();
  } catch (e) {
    err.textContent = e instanceof ApiError ? e.message : String(e);
  }
});

$("#logout").addEventListener("click", () => { setToken(null); user = null; location.hash = ""; route(); });
window.addEventListener("hashchange", route);

if (token()) await whoami();
await route();
