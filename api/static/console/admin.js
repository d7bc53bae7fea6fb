// Admin: users, API keys, enrollment tokens, flowgraph templates awaiting approval with every
// piece of Python they run.
import { get, post, api, ApiError } from "./api.js";
import { h, $, when, shortId } from "./util.js";
import { showErrors, clearErrors } from "./jobs.js";

export class AdminView {
  constructor() { this.wired = false; }

  async show() {
    if (!this.wired) this.wire();
    await Promise.all([this.users(), this.keys(), this.templates()]);
  }

  hide() {}

  wire() {
    this.wired = true;
    $("#user-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = ev.target;
      clearErrors(form);
      const body = Object.fromEntries(new FormData(form).entries());
      try {
        await post("/users", body);
        form.reset();
        await this.users();
      } catch (e) {
        if (e instanceof ApiError && e.status === 422) showErrors(form, e.detail, "");
        else form.querySelector('[data-error-for="form"]').textContent = e.message;
      }
    });
    for (const name of ["username", "password"]) {
      const input = $(`#user-form [name="${name}"]`);
      input.insertAdjacentElement("afterend", h("p", { class: "error", "data-error-for": name, role: "alert" }));
    }
    $("#key-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const form = ev.target;
      clearErrors(form);
      try {
        const key = await post("/api-keys", { name: new FormData(form).get("name") });
        $("#key-secret").textContent = `New key (shown once): ${key.key}`;
        form.reset();
        await this.keys();
      } catch (e) {
        if (e instanceof ApiError && e.status === 422) showErrors(form, e.detail, "");
        else form.querySelector('[data-error-for="form"]').textContent = e.message;
      }
    });
    $("#key-form [name=name]").insertAdjacentElement("afterend", h("p", { class: "error", "data-error-for": "name", role: "alert" }));
    $("#enroll-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const hours = Number(new FormData(ev.target).get("hours")) || 24;
      try {
        const t = await post("/nodes/enrollment-tokens", { ttl_s: Math.round(hours * 3600) });
        $("#enroll-secret").textContent = `Token (shown once, valid until ${when(t.expires_at)}): ${t.token}`;
      } catch (e) { $("#enroll-secret").textContent = e.message; }
    });
  }

  async users() {
    let users;
    try { users = await get("/users"); } catch (e) { $("#user-table tbody").replaceChildren(h("tr", {}, h("td", { colspan: 5 }, e.message))); return; }
    $("#user-table tbody").replaceChildren(...users.map((u) => {
      const role = h("select", { "aria-label": `role of ${u.username}`, onchange: async () => {
        try { await api("PATCH", `/users/${u.id}`, { role: role.value }); } catch (e) { alert(e.message); }
        this.users();
      } }, ...["viewer", "operator", "admin"].map((r) => h("option", { selected: r === u.role }, r)));
      const toggle = h("button", { type: "button", class: "secondary", onclick: async () => {
        try { await api("PATCH", `/users/${u.id}`, { disabled: !u.disabled }); } catch (e) { alert(e.message); }
        this.users();
      } }, u.disabled ? "Enable" : "Disable");
      return h("tr", {}, h("td", {}, u.username), h("td", {}, role), h("td", {}, u.permissions.join(", ") || "–"),
        h("td", {}, u.disabled ? "disabled" : "active"), h("td", {}, toggle));
    }));
  }

  async keys() {
    let keys;
    try { keys = await get("/api-keys/all"); } catch { keys = (await get("/api-keys")).map((k) => ({ ...k, username: "me" })); }
    $("#key-table tbody").replaceChildren(...keys.map((k) => h("tr", {},
      h("td", {}, k.name), h("td", {}, k.username),
      h("td", {}, k.expires_at ? `${when(k.expires_at)}${k.expired ? " (expired)" : ""}` : "never"),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: async () => {
        if (!confirm(`Delete the key ${k.name}?`)) return;
        try { await api("DELETE", `/api-keys/${k.id}`); } catch (e) { alert(e.message); }
        this.keys();
      } }, "Delete")))));
  }

  async templates() {
    const list = await get("/flowgraphs");
    const box = $("#template-list");
    if (!list.length) { box.replaceChildren(h("p", { class: "muted" }, "No uploaded templates.")); return; }
    const waiting = list.filter((t) => !t.approved_at);
    const approved = list.filter((t) => t.approved_at);
    box.replaceChildren(
      h("h3", {}, `Awaiting approval (${waiting.length})`),
      ...waiting.map((t) => this.template(t, true)),
      h("h3", {}, `Approved (${approved.length})`),
      ...approved.map((t) => this.template(t, false)));
  }

  template(t, pending) {
    const approve = pending ? h("button", { type: "button", onclick: async () => {
      if (!confirm(`Approve ${t.name}? It runs the Python listed with it on the nodes.`)) return;
      try { await post(`/flowgraphs/${t.id}/approve`); } catch (e) { alert(e.message); }
      this.templates();
    } }, "Approve") : null;
    return h("details", { class: "card", open: pending },
      h("summary", {}, `${t.name} · ${shortId(t.sha256)} · uploaded ${when(t.uploaded_at)}`,
        t.transmit_blocks.length ? h("span", { class: "runs-code" }, ` · transmits (${t.transmit_blocks.join(", ")})`) : ""),
      h("p", {}, `Parameters: ${t.parameters.map((p) => `${p.name} (${p.type})`).join(", ") || "none"}`),
      h("p", {}, `${t.expressions.length} pieces of Python, ${t.expressions.filter((e) => e.runs_code).length} of them running code (calls, imports, source): `,
        `blocks with their own source: ${t.embedded_code.join(", ") || "none"}`),
      h("table", { class: "data wrap" },
        h("thead", {}, h("tr", {}, h("th", {}, "Block"), h("th", {}, "Kind"), h("th", {}, "Parameter"), h("th", {}, "Code"))),
        // what runs code first
        h("tbody", {}, ...[...t.expressions].sort((a, b) => b.runs_code - a.runs_code).map((e) => h("tr", {},
          h("td", {}, `${e.block} (${e.block_id})`), h("td", { class: e.runs_code ? "runs-code" : "" }, e.kind + (e.runs_code ? " · runs code" : "")),
          h("td", {}, e.parameter), h("td", {}, h("pre", { class: "code" }, e.code)))))),
      approve);
  }
}
