// Jobs: the list (live status over each active job's WebSocket), filters, cancel, and a submit
// form per job type built from the OpenAPI schema, so a new job type needs no code here.
import { get, post, api, jobFeed, ApiError } from "./api.js";
import { h, $, when, shortId, FINAL } from "./util.js";

const LIST_POLL_MS = 5000;
const MAX_FEEDS = 20;

let openapi = null;
export async function schema() {
  if (!openapi) openapi = await (await fetch("/openapi.json")).json();
  return openapi;
}

function resolve(doc, s) {
  while (s && s.$ref) s = doc.components.schemas[s.$ref.split("/").pop()];
  return s;
}

/** { schema, nullable } with anyOf [X, null] unwrapped. */
function unwrap(doc, s) {
  s = resolve(doc, s);
  if (s && s.anyOf) {
    const kinds = s.anyOf.filter((x) => x.type !== "null");
    const nullable = kinds.length < s.anyOf.length;
    if (kinds.length === 1) return { schema: { ...resolve(doc, kinds[0]), title: s.title, default: s.default, description: s.description }, nullable };
    return { schema: s, nullable };
  }
  return { schema: s, nullable: false };
}

/** The job types POST /jobs accepts: name -> schema, read from the request body's union. */
export async function jobTypes() {
  const doc = await schema();
  const body = doc.paths["/api/v1/jobs"].post.requestBody.content["application/json"].schema;
  const union = resolve(doc, body);
  const options = union.oneOf || union.anyOf || [union];
  const out = new Map();
  for (const ref of options) {
    const s = resolve(doc, ref);
    const name = s.properties.type.const || (s.properties.type.enum || [])[0] || s.properties.type.default;
    out.set(name, s);
  }
  return out;
}

function label(name, s, required) {
  return `${name}${required ? " *" : ""}`;
}

/** Inputs for one object schema; names are dotted paths ("area.lat_deg"). */
function fields(doc, objSchema, prefix = "") {
  const req = new Set(objSchema.required || []);
  const out = [];
  for (const [name, raw] of Object.entries(objSchema.properties || {})) {
    if (!prefix && name === "type") continue;
    const path = prefix + name;
    const { schema: s, nullable } = unwrap(doc, raw);
    const required = req.has(name);
    const err = h("p", { class: "error", "data-error-for": path, id: `err-${path}`, role: "alert" });
    const help = raw.description || s.description;
    if (s.type === "object" && s.properties) {
      const inner = fields(doc, s, path + ".");
      const fs = h("fieldset", { "data-object": path },
        h("legend", {}, label(name, raw, required)), ...inner, err);
      if (!required) {
        const toggle = h("input", { type: "checkbox", "data-include": path,
          onchange: () => { inner.forEach((el) => { el.hidden = !toggle.checked; }); } });
        inner.forEach((el) => { el.hidden = true; });
        fs.insertBefore(h("label", { class: "row" }, toggle, `include ${name}`), fs.children[1]);
      }
      out.push(fs);
      continue;
    }
    let input;
    const common = { name: path, id: `f-${path}`, "aria-describedby": `err-${path}`, "data-kind": s.type || "json" };
    const choices = s.enum || (s.const !== undefined ? [s.const] : null);
    if (choices) {
      input = h("select", common, ...(required || s.default !== undefined ? [] : [h("option", { value: "" }, "")]),
        ...choices.map((c) => h("option", { value: c, selected: c === s.default }, c)));
    } else if (s.type === "boolean") {
      input = h("input", { ...common, type: "checkbox", checked: s.default === true });
    } else if (s.type === "array") {
      input = h("input", { ...common, type: "text", placeholder: "comma-separated", "data-kind": "array",
        value: Array.isArray(s.default) ? s.default.join(",") : "" });
    } else if (s.type === "number" || s.type === "integer") {
      input = h("input", { ...common, type: "text", inputmode: "decimal", autocomplete: "off",
        value: s.default ?? "", placeholder: s.default === undefined || s.default === null ? (nullable ? "optional" : "") : "" });
    } else if (s.type === "string") {
      input = h("input", { ...common, type: "text", value: s.default ?? "", autocomplete: "off" });
    } else {
      input = h("textarea", { ...common, "data-kind": "json", rows: 2, placeholder: "JSON" },
        s.default !== undefined && s.default !== null ? JSON.stringify(s.default) : "");
    }
    const lab = h("label", { for: `f-${path}` }, label(name, raw, required), input,
      help ? h("span", { class: "field-help" }, help) : null, err);
    out.push(lab);
  }
  return out;
}

function readValue(el) {
  const kind = el.dataset.kind;
  if (el.type === "checkbox") return el.checked;
  const v = el.value.trim();
  if (v === "") return undefined;
  if (kind === "number" || kind === "integer") {
    const n = Number(v);
    return Number.isFinite(n) ? n : v; // the API says what is wrong with it
  }
  if (kind === "array") return v.split(",").map((x) => x.trim()).filter(Boolean);
  if (kind === "json") { try { return JSON.parse(v); } catch { return v; } }
  return v;
}

/** The form's values as the request body. */
export function formBody(form, type) {
  const body = { type };
  const included = new Set([...form.querySelectorAll("[data-include]")].filter((c) => c.checked).map((c) => c.dataset.include));
  const optional = new Set([...form.querySelectorAll("[data-include]")].map((c) => c.dataset.include));
  for (const el of form.querySelectorAll("[name]")) {
    const path = el.name.split(".");
    if (path.length > 1 && optional.has(path[0]) && !included.has(path[0])) continue;
    const v = readValue(el);
    if (v === undefined) continue;
    let o = body;
    for (const p of path.slice(0, -1)) o = o[p] ??= {};
    o[path[path.length - 1]] = v;
  }
  return body;
}

/** The API's 422 messages next to the fields they name. */
export function showErrors(form, detail, type) {
  const fieldsByName = [...form.querySelectorAll("[data-error-for]")].map((e) => e.dataset.errorFor);
  const general = [];
  for (const e of Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }]) {
    let loc = (e.loc || []).filter((p) => p !== "body" && p !== type).map(String);
    let key = loc.join(".");
    while (loc.length && !fieldsByName.includes(key)) { loc = loc.slice(0, -1); key = loc.join("."); }
    if (!key) {
      // a check across fields names one of them in its message
      // (the one it names first: "stop_freq_hz must be above start_freq_hz")
      let at = Infinity;
      key = "";
      for (const f of fieldsByName.filter((x) => x !== "form" && !x.includes("."))) {
        const m = new RegExp(`\\b${f}\\b`).exec(e.msg);
        if (m && m.index < at) { at = m.index; key = f; }
      }
    }
    const msg = e.msg.replace(/^Value error, /, "");
    const target = key && form.querySelector(`[data-error-for="${CSS.escape(key)}"]`);
    if (target) {
      target.textContent = target.textContent ? `${target.textContent}; ${msg}` : msg;
      const input = form.querySelector(`[name="${CSS.escape(key)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      general.push(msg);
    }
  }
  form.querySelector('[data-error-for="form"]').textContent = general.join("; ");
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

export function clearErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((e) => { e.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function jobLink(job) {
  const target = job.type === "spectrum_scan" ? `#/scan/${job.id}` : `#/result/${job.id}`;
  return h("a", { href: target, title: job.id }, shortId(job.id));
}

export class JobsView {
  constructor() {
    this.feeds = new Map();
    this.timer = null;
    this.built = false;
    this.filter = {};
  }

  async show() {
    if (!this.built) await this.build();
    await this.refresh();
    this.timer = setInterval(() => this.refresh().catch(() => {}), LIST_POLL_MS);
  }

  hide() {
    clearInterval(this.timer);
    for (const ws of this.feeds.values()) ws.close();
    this.feeds.clear();
  }

  async build() {
    this.built = true;
    this.types = await jobTypes();
    const doc = await schema();
    const statusEnum = resolve(doc, { $ref: "#/components/schemas/JobStatus" });
    $("#filter-status").append(...(statusEnum?.enum || []).map((s) => h("option", { value: s }, s)));
    $("#filter-type").append(...[...this.types.keys()].map((t) => h("option", { value: t }, t)));
    $("#job-filter").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const fd = new FormData(ev.target);
      this.filter = Object.fromEntries([...fd.entries()].filter(([, v]) => v));
      this.refresh();
    });
    const pick = $("#submit-type");
    pick.append(...[...this.types.keys()].map((t) => h("option", { value: t }, t)));
    pick.addEventListener("change", () => this.buildForm(pick.value));
    this.buildForm(pick.value);
  }

  buildForm(type) {
    const doc = openapi;
    const form = $("#submit-form");
    form.dataset.type = type;
    const s = this.types.get(type);
    form.replaceChildren(
      s.description ? h("p", { class: "muted" }, s.description) : "",
      ...fields(doc, s),
      h("p", { class: "error", "data-error-for": "form", role: "alert" }),
      h("button", { type: "submit" }, `Submit ${type}`));
    form.onsubmit = (ev) => { ev.preventDefault(); this.submit(form, type); };
  }

  async submit(form, type) {
    clearErrors(form);
    const status = $("#submit-status");
    status.textContent = "";
    try {
      const job = await post("/jobs", formBody(form, type));
      status.replaceChildren("Submitted ", jobLink(job), ` (${job.status})`);
      await this.refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) showErrors(form, e.detail, type);
      else form.querySelector('[data-error-for="form"]').textContent = e.message;
    }
  }

  async refresh() {
    const q = new URLSearchParams({ limit: "50", ...this.filter });
    const page = await get(`/jobs?${q}`);
    const body = $("#job-table tbody");
    body.replaceChildren(...page.items.map((job) => this.row(job)));
    const active = new Set(page.items.filter((j) => !FINAL.has(j.status)).slice(0, MAX_FEEDS).map((j) => j.id));
    for (const [id, ws] of this.feeds) if (!active.has(id)) { ws.close(); this.feeds.delete(id); }
    for (const id of active) if (!this.feeds.has(id)) this.follow(id);
  }

  row(job) {
    const cancel = FINAL.has(job.status) ? "" : h("button", { class: "secondary", type: "button",
      onclick: async (ev) => {
        ev.target.disabled = true;
        try { await api("POST", `/jobs/${job.id}/cancel`); } catch (e) { alert(e.message); }
        this.refresh();
      } }, "Cancel");
    const reason = job.pending_reason || job.status_reason;
    return h("tr", { "data-job": job.id },
      h("td", {}, jobLink(job)),
      h("td", {}, job.type),
      h("td", { class: `st-${job.status}`, "data-status": "", title: reason || "" }, job.status),
      h("td", {}, when(job.created_at)),
      h("td", {}, cancel));
  }

  follow(id) {
    const ws = jobFeed(id, (msg) => {
      let status = null;
      if (msg.type === "job") status = msg.status;
      else if (msg.type === "transition") status = msg.to_status;
      else if (msg.type === "end") status = msg.status;
      if (!status) return;
      const cell = document.querySelector(`tr[data-job="${id}"] [data-status]`);
      if (cell) { cell.textContent = status; cell.className = `st-${status}`; }
    }, () => this.feeds.delete(id));
    this.feeds.set(id, ws);
  }
}
