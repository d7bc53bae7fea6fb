// A job's result: for direction finding the position, its 95 % ellipse on a map, the nodes and
// measurements, GeoJSON and per-node IQ (SigMF) downloads; for a scan its merged signals.
import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { get, download, ApiError } from "./api.js";
import { h, $, fmt, mhz, seconds, shortId } from "./util.js";
import { makeMap, drawLocation, NodeLayer } from "./mapview.js";

export class ResultView {
  constructor(config) { this.config = config; this.map = null; }

  async show(jobId) {
    const jobs = (await get("/jobs?status=completed&limit=50")).items;
    const sel = $("#result-job");
    sel.replaceChildren(...jobs.map((j) => h("option", { value: j.id, selected: j.id === jobId }, `${shortId(j.id)} ${j.type}`)));
    $("#result-pick").onsubmit = (ev) => { ev.preventDefault(); location.hash = `#/result/${sel.value}`; };
    if (!this.map) {
      this.map = makeMap($("#result-map"), this.config);
      this.group = L.layerGroup().addTo(this.map);
      this.nodes = new NodeLayer(this.map);
    }
    this.map.invalidateSize();
    const id = jobId || (jobs[0] && jobs[0].id);
    if (id) await this.open(id);
  }

  hide() {}

  async open(jobId) {
    this.group.clearLayers();
    this.drawn = null;
    $("#result-title").textContent = shortId(jobId);
    const summary = $("#result-summary");
    const link = $("#result-geojson");
    link.hidden = true;
    $("#result-zoom").hidden = true;
    let result;
    try {
      result = await get(`/jobs/${jobId}/result`);
    } catch (e) {
      summary.textContent = e instanceof ApiError ? `No result: ${e.message}` : String(e);
      $("#result-nodes tbody").replaceChildren();
      $("#result-measurements tbody").replaceChildren();
      return;
    }
    this.result = result;
    const names = new Map((result.nodes || []).map((n) => [n.node_id, n.name]));
    if (result.kind === "location") {
      const p = result.position;
      const e = result.ellipse_95;
      summary.replaceChildren(
        result.usable
          ? `${result.method.toUpperCase()} fix at ${fmt(p.lat_deg, 6)}, ${fmt(p.lon_deg, 6)}` +
            (e ? ` · 95 % ellipse ${fmt(e.semi_major_m, 0)} × ${fmt(e.semi_minor_m, 0)} m, major axis ${fmt(e.orientation_deg, 0)}° from north` : "") +
            (result.quality && result.quality.gdop ? ` · GDOP ${fmt(result.quality.gdop, 2)}` : "") +
            (result.components || []).map((c) => ` · ${c.method === "aoa" ? "bearings" : "TDOA"} alone: ` +
              (c.usable && c.ellipse_95 ? `${fmt(c.ellipse_95.semi_major_m, 0)} × ${fmt(c.ellipse_95.semi_minor_m, 0)} m` : "no fix")).join("")
          : `No usable fix: ${result.reason}`,
        ` · ${mhz(result.center_freq_hz, 4)} MHz`);
      link.hidden = false;
      link.onclick = (ev) => { ev.preventDefault(); download(`/jobs/${jobId}/result?format=geojson`, `drift-${shortId(jobId)}.geojson`); };
      const geo = await get(`/jobs/${jobId}/result?format=geojson`);
      this.drawn = drawLocation(this.group, geo);
      const pts = geo.features.filter((f) => f.geometry.type === "Point").map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]);
      const bounds = L.latLngBounds(pts);
      if (this.drawn.ellipse) bounds.extend(this.drawn.ellipse.getBounds());
      for (const f of geo.features.filter((x) => x.properties.role === "node")) {
        L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: 6, color: getComputedStyle(document.documentElement).getPropertyValue(f.properties.used ? "--online" : "--muted").trim() })
          .bindTooltip(f.properties.name).addTo(this.group);
      }
      if (pts.length) this.map.fitBounds(bounds.pad(0.2));
      const zoom = $("#result-zoom");
      zoom.hidden = !this.drawn.ellipse;
      zoom.onclick = () => this.map.fitBounds(this.drawn.ellipse.getBounds().pad(0.5), { maxZoom: 19 });
      $("#result-nodes tbody").replaceChildren(...result.nodes.map((n) => h("tr", {},
        h("td", {}, n.name), h("td", {}, n.used ? "yes" : `no${n.note ? ": " + n.note : ""}`),
        h("td", {}, `${n.sync_source} ± ${seconds(n.time_uncertainty_s)}`),
        h("td", { class: "num" }, fmt(n.snr_db, 1)),
        h("td", {}, n.state === "completed" ? h("button", { type: "button", class: "secondary",
          onclick: () => download(`/jobs/${jobId}/iq?node_id=${n.node_id}`, `drift-${shortId(jobId)}-${n.name}.sigmf`) }, "SigMF") : "–"))));
      $("#result-measurements tbody").replaceChildren(...result.measurements.map((m) => {
        if (m.kind === "tdoa") return h("tr", {}, h("td", {}, "TDOA"), h("td", {}, `${names.get(m.node_id) || shortId(m.node_id)} − ${names.get(m.reference_node_id) || shortId(m.reference_node_id)}`), h("td", { class: "num" }, seconds(m.delay_s)), h("td", { class: "num" }, seconds(m.std_s)));
        if (m.kind === "rss") return h("tr", {}, h("td", {}, "RSS"), h("td", {}, names.get(m.node_id) || shortId(m.node_id)), h("td", { class: "num" }, `${fmt(m.power_dbm, 1)} dBm`), h("td", { class: "num" }, `SNR ${fmt(m.snr_db, 1)} dB`));
        return h("tr", {}, h("td", {}, "bearing"), h("td", {}, names.get(m.node_id) || shortId(m.node_id)), h("td", { class: "num" }, `${fmt(m.azimuth_deg, 1)}°`), h("td", { class: "num" }, `${fmt(m.std_deg, 1)}°`));
      }));
    } else if (result.kind === "scan") {
      summary.textContent = `${result.signals.length} signals between ${mhz(result.start_freq_hz, 3)} and ${mhz(result.stop_freq_hz, 3)} MHz, merged across ${result.nodes.length} nodes`;
      $("#result-nodes tbody").replaceChildren(...result.nodes.map((n) => h("tr", {}, h("td", {}, n.name), h("td", {}, n.state), h("td", {}, "–"), h("td", { class: "num" }, `${n.detections} detections`), h("td", {}, "–"))));
      $("#result-measurements tbody").replaceChildren(...result.signals.map((s) => h("tr", {}, h("td", {}, "signal"), h("td", {}, s.sightings.map((x) => names.get(x.node_id) || shortId(x.node_id)).join(", ")), h("td", { class: "num" }, `${mhz(s.center_freq_hz, 4)} MHz`), h("td", { class: "num" }, s.max_power_dbm === null ? "–" : `${fmt(s.max_power_dbm, 1)} dBm`))));
      const geo = await get(`/jobs/${jobId}/result?format=geojson`).catch(() => null);
      if (geo) {
        const pts = geo.features.map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]);
        for (const f of geo.features) L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: 6 }).bindTooltip(f.properties.name || "").addTo(this.group);
        if (pts.length) this.map.fitBounds(L.latLngBounds(pts).pad(0.2));
      }
    } else {
      summary.textContent = `${result.kind}: ${result.nodes.length} nodes delivered`;
      $("#result-nodes tbody").replaceChildren(...result.nodes.map((n) => h("tr", {}, h("td", {}, n.name), h("td", {}, n.state), h("td", {}, "–"), h("td", {}, JSON.stringify(n.frames)), h("td", {}, "–"))));
      $("#result-measurements tbody").replaceChildren();
    }
  }

  /** The drawn ellipse's vertices [lat, lon] (for the tests). */
  ellipse() {
    if (!this.drawn || !this.drawn.ellipse) return null;
    return this.drawn.ellipse.getLatLngs()[0].map((p) => [p.lat, p.lng]);
  }
}
