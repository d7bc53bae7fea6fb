// A scan: live spectrum (uPlot) and waterfall (canvas) per node as frames arrive over the job's
// WebSocket, the nodes' detections listed and marked on the spectra; a finished scan from the
// stored spectrum (GET /spectrum/{id}) with a time slider over its sweeps.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { get, jobFeed } from "./api.js";
import { h, $, mhz, fmt, when, shortId, FINAL } from "./util.js";
import { Waterfall } from "./waterfall.js";

const DETECTIONS_POLL_MS = 2000;
const MAX_COLUMNS = 4096;

function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class NodePanel {
  constructor(container, nodeName, job, keepSweeps) {
    const p = job.parameters;
    this.start = p.start_freq_hz; this.stop = p.stop_freq_hz;
    const columns = Math.min(MAX_COLUMNS, Math.round((this.stop - this.start) / p.bin_hz));
    this.canvas = h("canvas", { class: "waterfall", "aria-label": `Waterfall of ${nodeName}`, role: "img" });
    this.plotEl = h("div", { class: "spectrum" });
    this.el = h("div", { class: "card scan-node" }, h("h3", {}, nodeName), this.plotEl, this.canvas);
    container.append(this.el);
    const sweeps = Math.ceil((p.duration_s || 60) / (p.interval_s || 1));
    this.wf = new Waterfall(this.canvas, this.start, this.stop, columns, 240, Math.max(1, Math.floor(240 / sweeps)));
    this.wf.keepSweeps = keepSweeps;
    this.freqs = Float64Array.from({ length: this.wf.columns },
      (_, c) => (this.start + ((c + 0.5) / this.wf.columns) * (this.stop - this.start)) / 1e6);
    this.detections = [];
    this.lastSeq = -1;
    const width = Math.max(280, this.el.clientWidth - 32);
    const panel = this;
    this.plot = new uPlot({
      width, height: 200,
      scales: { x: { time: false } },
      axes: [
        { label: "MHz", stroke: cssVar("--fg"), grid: { stroke: cssVar("--line") } },
        { label: "dBm/Hz", stroke: cssVar("--fg"), grid: { stroke: cssVar("--line") } },
      ],
      series: [{ label: "MHz" }, { label: "PSD", stroke: cssVar("--accent"), width: 1, spanGaps: false, points: { show: false } }],
      legend: { show: false },
      cursor: { drag: { x: true, y: false } },
      hooks: { draw: [(u) => panel.markDetections(u)] },
    }, [Array.from(this.freqs), new Array(this.wf.columns).fill(null)], this.plotEl);
    this.pending = null;
    this.wf.onSweep = (row) => { this.showRow(row); };
  }

  showRow(row) {
    this.pending = row.slice();
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = null;
      const ys = Array.from(this.pending, (v) => (Number.isNaN(v) ? null : v));
      this.plot.setData([Array.from(this.freqs), ys]);
    });
  }

  add(frame) {
    if (frame.seq !== undefined && frame.seq <= this.lastSeq) return; // stored, then live: once
    if (frame.seq !== undefined) this.lastSeq = frame.seq;
    this.wf.add(frame);
    this.showRow(this.wf.row);
  }

  markDetections(u) {
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = cssVar("--fix") + "55";
    ctx.strokeStyle = cssVar("--fix");
    for (const d of this.detections) {
      const x0 = u.valToPos((d.center_freq_hz - d.bandwidth_hz / 2) / 1e6, "x", true);
      const x1 = u.valToPos((d.center_freq_hz + d.bandwidth_hz / 2) / 1e6, "x", true);
      const w = Math.max(2, x1 - x0);
      ctx.fillRect(x0, u.bbox.top, w, u.bbox.height);
    }
    ctx.restore();
  }

  setDetections(dets) { this.detections = dets; this.plot.redraw(false, false); }
}

export class ScanView {
  constructor() { this.ws = null; this.timer = null; this.panels = new Map(); this.jobId = null; }

  async show(jobId) {
    const jobs = (await get("/jobs?type=spectrum_scan&limit=50")).items;
    const sel = $("#scan-job");
    sel.replaceChildren(...jobs.map((j) => h("option", { value: j.id, selected: j.id === jobId },
      `${shortId(j.id)} ${mhz(j.parameters.start_freq_hz, 1)}–${mhz(j.parameters.stop_freq_hz, 1)} MHz (${j.status})`)));
    $("#scan-pick").onsubmit = (ev) => { ev.preventDefault(); location.hash = `#/scan/${sel.value}`; };
    const id = jobId || (jobs[0] && jobs[0].id);
    if (id) await this.open(id);
  }

  hide() {
    if (this.ws) this.ws.close();
    this.ws = null;
    clearInterval(this.timer);
    this.timer = null;
  }

  async open(jobId) {
    this.hide();
    this.jobId = jobId;
    const job = await get(`/jobs/${jobId}`);
    this.job = job;
    const names = new Map((await get("/nodes")).map((n) => [n.id, n.name]));
    this.names = names;
    $("#scan-title").textContent = `${shortId(job.id)} · ${mhz(job.parameters.start_freq_hz, 3)}–${mhz(job.parameters.stop_freq_hz, 3)} MHz`;
    this.setStatus(job.status);
    const box = $("#scan-nodes");
    box.replaceChildren();
    this.panels = new Map();
    const finished = FINAL.has(job.status);
    const keep = finished ? 1000 : 0;
    for (const a of job.assignments) {
      if (!this.panels.has(a.node_id)) this.panels.set(a.node_id, new NodePanel(box, names.get(a.node_id) || shortId(a.node_id), job, keep));
    }
    // what is already stored, then what arrives
    await this.loadStored();
    if (!finished) {
      this.ws = jobFeed(jobId, (msg) => this.onMessage(msg));
      this.timer = setInterval(() => this.loadDetections().catch(() => {}), DETECTIONS_POLL_MS);
    } else {
      for (const p of this.panels.values()) p.wf.endSweep();
      this.slider();
    }
    await this.loadDetections();
  }

  panel(nodeId) {
    let p = this.panels.get(nodeId);
    if (!p) {
      p = new NodePanel($("#scan-nodes"), this.names.get(nodeId) || shortId(nodeId), this.job, 0);
      this.panels.set(nodeId, p);
    }
    return p;
  }

  async loadStored() {
    const page = await get(`/spectrum/${this.jobId}?limit=10000`);
    for (const f of page.frames) this.panel(f.node_id).add(f);
  }

  onMessage(msg) {
    if (msg.type === "psd") this.panel(msg.node_id).add(msg);
    else if (msg.type === "transition") this.setStatus(msg.to_status);
    else if (msg.type === "end") {
      this.setStatus(msg.status);
      clearInterval(this.timer);
      this.loadDetections();
    }
  }

  setStatus(status) {
    const b = $("#scan-status");
    b.textContent = status;
    b.className = `badge st-${status}`;
    const o = $("#scan-job").selectedOptions[0];
    if (o) o.textContent = o.textContent.replace(/\(\w+\)$/, `(${status})`);
  }

  async loadDetections() {
    const page = await get(`/jobs/${this.jobId}/detections`);
    const byNode = new Map();
    for (const d of page.detections) {
      if (!byNode.has(d.node_id)) byNode.set(d.node_id, []);
      byNode.get(d.node_id).push(d);
    }
    for (const [id, dets] of byNode) this.panel(id).setDetections(dets);
    const rows = page.detections.slice().sort((a, b) => a.center_freq_hz - b.center_freq_hz);
    $("#detection-table tbody").replaceChildren(...rows.map((d) => h("tr", { "data-freq": d.center_freq_hz },
      h("td", {}, this.names.get(d.node_id) || shortId(d.node_id)),
      h("td", { class: "num" }, mhz(d.center_freq_hz, 4)),
      h("td", { class: "num" }, fmt(d.bandwidth_hz / 1e3, 1)),
      h("td", { class: "num" }, `${fmt(d.power_dbm, 1)} ${d.units || "dBm"}`),
      h("td", { class: "num" }, fmt(d.snr_db, 1)),
      h("td", {}, when(d.last_seen)))));
  }

  /** A finished scan: the slider picks the sweep each spectrum shows. */
  slider() {
    const longest = Math.max(0, ...[...this.panels.values()].map((p) => p.wf.sweeps.length));
    const row = $("#scan-slider-row");
    row.hidden = longest < 1;
    const s = $("#scan-slider");
    s.max = String(Math.max(0, longest - 1));
    s.value = s.max;
    const show = () => {
      const k = Number(s.value);
      let t = null;
      for (const p of this.panels.values()) {
        const sw = p.wf.sweeps[Math.min(k, p.wf.sweeps.length - 1)];
        if (sw) { p.showRow(sw.row); t = sw.time; }
      }
      $("#scan-slider-time").textContent = t ? `sweep ${k + 1} of ${longest}: ${when(new Date(t * 1000).toISOString())}` : "";
    };
    s.oninput = show;
    show();
  }
}
