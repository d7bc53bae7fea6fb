// The map: nodes at their positions coloured by status, DF fixes with their 95 % ellipses and
// lines to the nodes that measured them. No basemap unless the coordinator names a tile server.
import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { get } from "./api.js";
import { h, fmt, seconds, ago, shortId, $ } from "./util.js";

const POLL_MS = 2000;
const TABLE_ROWS = 100;

export function statusColor(status) {
  const css = getComputedStyle(document.documentElement);
  const name = status === "online" ? "--online" : status === "offline" ? "--offline" : "--other";
  return css.getPropertyValue(name).trim();
}

/** A Leaflet map with the console's defaults: canvas renderer (thousands of markers), no
 *  basemap unless `config.tile_url`. */
export function makeMap(el, config) {
  const map = L.map(el, { preferCanvas: true, zoomControl: true, keyboard: true,
    attributionControl: !!config.tile_url });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 19 }).addTo(map);
  }
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([0, 0], 2);
  return map;
}

function nodePopup(n) {
  const dev = n.devices[0] || {};
  const caps = dev.capabilities || {};
  const health = n.health || {};
  const cal = dev.last_calibrated
    ? ago(dev.last_calibrated) + (dev.calibration_valid === false ? " (expired)" : "")
    : "never";
  const m = (health.devices || [])[0] || {};
  return h("dl", { class: "popup" },
    h("dt", {}, n.name), h("dd", {}, `${n.status} · last seen ${ago(n.last_seen)}`),
    h("dt", {}, "Device"), h("dd", {}, `${dev.driver || "–"}${dev.serial ? " " + dev.serial : ""}` +
      (caps.freq_min_hz ? ` · ${fmt(caps.freq_min_hz / 1e6, 0)}–${fmt(caps.freq_max_hz / 1e6, 0)} MHz` : "")),
    h("dt", {}, "Time"), h("dd", {}, `${n.sync_source} ± ${seconds(n.sync_uncertainty_s)}`),
    h("dt", {}, "Calibrated"), h("dd", {}, cal),
    h("dt", {}, "Health"), h("dd", {},
      `CPU ${fmt(health.cpu_percent, 0)} % · jobs ${health.running_jobs ?? n.load ?? 0} · spool ${health.spooled_frames ?? 0}` +
      (health.dropped_samples ? ` · dropped ${health.dropped_samples}` : "") +
      (m.temperature_c != null ? ` · ${fmt(m.temperature_c, 1)} °C` : "") +
      (m.overflows ? ` · overflows ${m.overflows}` : "")),
    health.last_error ? h("dd", { class: "error" }, `last error: ${health.last_error}`) : null,
    h("dd", { class: "muted" }, `${fmt(n.lat_deg, 5)}, ${fmt(n.lon_deg, 5)}, ${fmt(n.alt_m, 0)} m`));
}

/** The node layer of a map: one circle marker per node, kept in step with GET /nodes. */
export class NodeLayer {
  constructor(map) {
    this.map = map;
    this.group = L.layerGroup().addTo(map);
    this.markers = new Map();
    this.nodes = new Map();
    this.fitted = false;
  }

  update(nodes) {
    const seen = new Set();
    const colours = { online: statusColor("online"), offline: statusColor("offline") };
    const other = statusColor("other");
    for (const n of nodes) {
      seen.add(n.id);
      this.nodes.set(n.id, n);
      const color = colours[n.status] || other;
      let m = this.markers.get(n.id);
      if (!m) {
        m = L.circleMarker([n.lat_deg, n.lon_deg], { radius: 8, weight: 2, fillOpacity: 0.8 });
        m.nodeId = n.id;
        m.bindPopup(() => nodePopup(this.nodes.get(m.nodeId)));
        // names on the map while they fit; on hover beyond that
        m.bindTooltip(n.name, { permanent: nodes.length <= 50, direction: "right", offset: [8, 0] });
        m.addTo(this.group);
        this.markers.set(n.id, m);
      } else {
        m.setLatLng([n.lat_deg, n.lon_deg]);
      }
      m.nodeName = n.name;
      if (m.status !== n.status || m.options.color !== color) m.setStyle({ color, fillColor: color });
      m.status = n.status;
    }
    for (const [id, m] of this.markers) {
      if (!seen.has(id)) { m.remove(); this.markers.delete(id); this.nodes.delete(id); }
    }
    if (!this.fitted && this.markers.size) {
      const b = L.latLngBounds([...this.markers.values()].map((m) => m.getLatLng()));
      this.map.fitBounds(b.pad(0.25), { maxZoom: 14 });
      this.fitted = true;
    }
  }

  /** What the layer draws, for the tests and the benchmark. */
  describe() {
    return [...this.markers.values()].map((m) => ({
      id: m.nodeId, name: m.nodeName, status: m.status,
      lat: m.getLatLng().lat, lon: m.getLatLng().lng, color: m.options.color,
    }));
  }
}

/** A DF result (its GeoJSON) on a map: the fix, the 95 % ellipse, lines to the nodes used
 * (and for a hybrid fix each method's own ellipse, dashed). */
export function drawLocation(group, geo) {
  const color = getComputedStyle(document.documentElement).getPropertyValue("--fix").trim();
  const fix = geo.features.find((f) => f.properties.role === "fix");
  const ellipse = geo.features.find((f) => f.properties.role === "ellipse");
  const nodes = geo.features.filter((f) => f.properties.role === "node");
  const drawn = { fix: null, ellipse: null, lines: [] };
  if (!fix) return drawn;
  const at = [fix.geometry.coordinates[1], fix.geometry.coordinates[0]];
  for (const n of nodes) {
    if (!n.properties.used) continue;
    const line = L.polyline([at, [n.geometry.coordinates[1], n.geometry.coordinates[0]]],
      { color, weight: 1, dashArray: "4 4", opacity: 0.8 }).addTo(group);
    drawn.lines.push(line);
  }
  drawn.components = [];
  for (const c of geo.features.filter((f) => f.properties.role === "component_ellipse")) {
    // a hybrid fix's methods alone: their ellipses dashed, under the fused one
    const poly = L.polygon(c.geometry.coordinates[0].map(([lon, lat]) => [lat, lon]),
      { color, weight: 1, dashArray: "6 4", fill: false, smoothFactor: 0 })
      .bindTooltip(`${c.properties.method === "aoa" ? "bearings" : "TDOA"} alone (95 %)`).addTo(group);
    poly.role = `ellipse_95-${c.properties.method}`;
    drawn.components.push(poly);
  }
  if (ellipse) {
    drawn.ellipse = L.polygon(ellipse.geometry.coordinates[0].map(([lon, lat]) => [lat, lon]),
      { color, weight: 2, fillOpacity: 0.15, smoothFactor: 0 }).addTo(group);
    drawn.ellipse.role = "ellipse_95";
  }
  const e = fix.properties.ellipse_95;
  drawn.fix = L.circleMarker(at, { radius: 5, color, fillColor: color, fillOpacity: 1 })
    .bindPopup(h("dl", { class: "popup" },
      h("dt", {}, `Fix (${fix.properties.method})`),
      h("dd", {}, `${fmt(at[0], 5)}, ${fmt(at[1], 5)}`),
      h("dd", {}, `${fmt(fix.properties.center_freq_hz / 1e6, 4)} MHz`),
      e ? h("dd", {}, `95 %: ${fmt(e.semi_major_m, 0)} × ${fmt(e.semi_minor_m, 0)} m at ${fmt(e.orientation_deg, 0)}°`) : null,
      h("dd", {}, h("a", { href: `#/result/${fix.properties.job_id}` }, `job ${shortId(fix.properties.job_id)}`))))
    .addTo(group);
  drawn.fix.role = "fix";
  return drawn;
}

/** A propagation test's result (its GeoJSON) on a map: each link from the transmitter to a
 * receiver as a line, its path loss in the popup. */
export function drawPropagation(group, geo) {
  const color = getComputedStyle(document.documentElement).getPropertyValue("--fix").trim();
  const drawn = { lines: [] };
  for (const f of geo.features.filter((g) => g.properties.role === "link")) {
    const p = f.properties;
    const line = L.polyline(f.geometry.coordinates.map(([lon, lat]) => [lat, lon]),
      { color, weight: 2, opacity: 0.8 })
      .bindPopup(h("dl", { class: "popup" },
        h("dt", {}, `Link to ${p.name}`),
        h("dd", {}, `${fmt(p.distance_m / 1000, 2)} km`),
        p.path_loss_db == null ? h("dd", {}, "not measured")
          : h("dd", {}, `loss ${fmt(p.path_loss_db, 1)} dB (${fmt(p.excess_loss_db, 1)} dB over free space)`),
        h("dd", {}, h("a", { href: `#/result/${geo.properties.job_id}` }, `job ${shortId(geo.properties.job_id)}`))))
      .addTo(group);
    line.role = "link";
    drawn.lines.push(line);
  }
  return drawn;
}

export class MapView {
  constructor(config) {
    this.config = config;
    this.map = null;
    this.timer = null;
    this.results = new Map();
  }

  async show() {
    if (!this.map) {
      this.map = makeMap($("#map"), this.config);
      this.nodes = new NodeLayer(this.map);
      this.resultGroup = L.layerGroup().addTo(this.map);
    }
    this.map.invalidateSize();
    await this.refresh();
    this.timer = setInterval(() => this.refresh().catch(() => {}), POLL_MS);
  }

  hide() { clearInterval(this.timer); this.timer = null; }

  async refresh() {
    const nodes = await get("/nodes");
    this.nodes.update(nodes);
    if (this.firstRenderMs === undefined && nodes.length) {
      this.firstRenderMs = null;
      // after Leaflet's own redraw (scheduled on the next animation frame): since navigation
      requestAnimationFrame(() => requestAnimationFrame(() => { this.firstRenderMs = performance.now(); }));
    }
    this.renderTable(nodes);
    const online = nodes.filter((n) => n.status === "online").length;
    $("#map-status").textContent = `${online} of ${nodes.length} nodes online`;
    await this.refreshResults();
  }

  async refreshResults() {
    const page = await get("/jobs?type=direction_finding&status=completed&limit=20");
    for (const job of page.items) {
      if (this.results.has(job.id)) continue;
      this.results.set(job.id, null);
      try {
        const geo = await get(`/jobs/${job.id}/result?format=geojson`);
        this.results.set(job.id, drawLocation(this.resultGroup, geo));
      } catch { /* unusable: nothing to draw */ }
    }
    const tests = await get("/jobs?type=propagation_test&status=completed&limit=20");
    for (const job of tests.items) {
      if (this.results.has(job.id)) continue;
      this.results.set(job.id, null);
      try {
        const geo = await get(`/jobs/${job.id}/result?format=geojson`);
        this.results.set(job.id, drawPropagation(this.resultGroup, geo));
      } catch { /* no result: nothing to draw */ }
    }
  }

  renderTable(nodes) {
    this.lastNodes = nodes;
    const find = $("#node-find");
    if (!find.oninput) find.oninput = () => this.renderTable(this.lastNodes);
    const q = find.value.trim().toLowerCase();
    // offline nodes first; a long list is cut (the map shows them all)
    const shown = nodes.filter((n) => !q || n.name.toLowerCase().includes(q))
      .sort((a, b) => (a.status === "offline" ? 0 : 1) - (b.status === "offline" ? 0 : 1));
    $("#node-count").textContent = shown.length > TABLE_ROWS ? `first ${TABLE_ROWS} of ${shown.length}` : "";
    const body = $("#node-table tbody");
    body.replaceChildren(...shown.slice(0, TABLE_ROWS).map((n) => h("tr", {},
      h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); this.focus(n.id); } }, n.name)),
      h("td", { class: `st-${n.status}` }, n.status),
      h("td", {}, (n.devices[0] || {}).driver || "–"),
      h("td", {}, `${n.sync_source} ± ${seconds(n.sync_uncertainty_s)}`),
      h("td", {}, `${fmt(n.lat_deg, 4)}, ${fmt(n.lon_deg, 4)}`))));
  }

  focus(nodeId) {
    const m = this.nodes.markers.get(nodeId);
    if (!m) return;
    this.map.setView(m.getLatLng(), Math.max(this.map.getZoom(), 13));
    m.openPopup();
  }
}
