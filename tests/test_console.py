"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against
a real coordinator (``drift serve``) and simulated nodes (``drift node``) as processes.

Oracles: the scenario files (node coordinates, emitters' frequencies and the DF target's
position), the coordinator's REST API, and what the page's own Leaflet layers and canvases hold
(read back with ``page.evaluate``, not only from the DOM). Every request and WebSocket the page
opens is recorded and must go to the coordinator's origin. Screenshots of each view go to
``var/console/``.

Chromium must be installed (``scripts/debian-packages.txt``): without it these tests fail.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright
from scipy import stats
from shapely import affinity
from shapely.geometry import Point, Polygon

from drift.localnet import LocalNetwork, wait_for
from drift.sim import load_scenario
from drift.sim.render import truth_table

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT / "examples" / "scenarios" / "city.yaml"
TDOA4 = ROOT / "examples" / "scenarios" / "tdoa4.yaml"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "var" / "console"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
#: the 99.9 % ellipse over the 95 % one (chi-square, 2 degrees of freedom)
CHI2_SCALE = math.sqrt(stats.chi2.ppf(0.999, 2) / stats.chi2.ppf(0.95, 2))


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: Debian's chromium is in scripts/debian-packages.txt "
        "(make setup installs it); the console's tests need it"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    # paced to the wall clock, so a scan is still running while the page watches it
    with LocalNetwork(
        tmp_path_factory.mktemp("city") / "net",
        CITY,
        ["n1", "n2", "n3", "n4"],
        device_options=",realtime=1",
        heartbeat_timeout_s=4.0,
    ) as net:
        yield net


class Console:
    """A browser page on the console, with every request and WebSocket it makes recorded."""

    def __init__(self, browser, net: LocalNetwork, viewport=DESKTOP, color_scheme="light"):
        self.net = net
        self.context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def js(self, expression: str):
        return self.page.evaluate(f"() => {expression}")

    def wait(self, expression: str, timeout_s: float = 30):
        # a function, not a string: the console's Content-Security-Policy forbids eval
        self.page.wait_for_function(f"() => {expression}", timeout=timeout_s * 1000)

    def login(self):
        self.page.goto(self.net.base + "/")
        self.page.fill("#login-username", "admin")
        self.page.fill("#login-password", self.net.password)
        self.page.click("#login-form button[type=submit]")
        self.wait("window.drift && window.drift.view === 'map' && window.drift.ready")

    def go(self, hash_: str, view: str):
        self.page.evaluate(f"() => {{ location.hash = {hash_!r}; }}")
        self.wait(f"window.drift.view === {view!r} && window.drift.ready")

    def shot(self, name: str, full_page: bool = True):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)

    def assert_one_origin(self):
        origin = urlsplit(self.net.base)
        assert self.requests, "the page made no request"
        for url in self.requests:
            u = urlsplit(url)
            if u.scheme in ("data", "blob"):
                continue
            assert (u.scheme, u.netloc) == (origin.scheme, origin.netloc), url
        for url in self.sockets:
            u = urlsplit(url)
            assert (u.scheme, u.netloc) == ("ws", origin.netloc), url
        assert not self.errors, self.errors

    def close(self):
        self.context.close()


def nodes_drawn(c: Console) -> dict[str, dict]:
    return {n["name"]: n for n in c.js("window.drift.views.map.nodes.describe()")}


def css_colour(c: Console, name: str) -> str:
    return c.js(f"getComputedStyle(document.documentElement).getPropertyValue('{name}').trim()")


def test_log_in_and_the_map_shows_the_nodes_where_they_are_and_a_killed_node_turns_offline(
    browser, city
):
    c = Console(browser, city)
    try:
        c.page.goto(city.base + "/")
        c.wait("window.drift && window.drift.ready")
        c.shot("login")
        # a wrong password is answered on the form
        c.page.fill("#login-username", "admin")
        c.page.fill("#login-password", "not the password")
        c.page.click("#login-form button[type=submit]")
        c.wait("document.querySelector('#login-error').textContent.length > 0")
        assert "wrong username or password" in c.page.inner_text("#login-error")
        # by keyboard alone: the form has the focus, Tab moves on, Enter submits
        c.page.fill("#login-username", "")
        c.page.fill("#login-password", "")
        c.page.focus("#login-username")
        c.page.keyboard.type("admin")
        c.page.keyboard.press("Tab")
        assert c.js("document.activeElement.id") == "login-password"
        c.page.keyboard.type(city.password)
        c.page.keyboard.press("Enter")
        c.wait("window.drift.view === 'map' && window.drift.ready")
        # the views are links in the tab order
        c.page.focus("#nav a[data-view=jobs]")
        c.page.keyboard.press("Enter")
        c.wait("window.drift.view === 'jobs' && window.drift.ready")
        c.go("#/map", "map")
        # the token is kept in this tab's sessionStorage, never in a URL
        assert c.js("sessionStorage.getItem('drift.token')")
        token = c.js("sessionStorage.getItem('drift.token')")
        assert not any(token in url for url in c.requests + c.sockets)

        scn = load_scenario(CITY)
        c.wait("window.drift.views.map.nodes.describe().length === 4")
        drawn = nodes_drawn(c)
        online = css_colour(c, "--online")
        for node in scn.nodes:
            d = drawn[node.id]
            assert abs(d["lat"] - node.position.lat) < 1e-9, node.id
            assert abs(d["lon"] - node.position.lon) < 1e-9, node.id
            assert (d["status"], d["color"]) == ("online", online), node.id
        # the popup says what the node is, its time source and its health
        c.page.evaluate(
            "() => { const v = window.drift.views.map; "
            "v.focus([...v.nodes.markers.values()].find((m) => m.nodeName === 'n1').nodeId); }"
        )
        popup = c.page.inner_text(".leaflet-popup-content")
        assert "adalm_pluto" in popup and "gps" in popup and "CPU" in popup, popup
        c.shot("map", full_page=False)

        city.kill_node("n3")  # SIGKILL: the coordinator finds out by its missed heartbeats
        c.wait(
            "window.drift.views.map.nodes.describe().some("
            "(n) => n.name === 'n3' && n.status === 'offline')",
            timeout_s=40,
        )
        drawn = nodes_drawn(c)
        assert drawn["n3"]["color"] == css_colour(c, "--offline")
        assert [n for n, d in drawn.items() if d["status"] == "online"] == ["n1", "n2", "n4"]
        c.page.evaluate(
            "() => { window.drift.views.map.map.closePopup(); document.activeElement.blur(); }"
        )
        time.sleep(0.5)  # the popup's fade
        c.shot("map-offline", full_page=False)
        # dark, and at a phone's width
        c.page.click("#theme")
        c.wait("document.documentElement.dataset.theme === 'dark' && window.drift.ready")
        c.page.set_viewport_size(PHONE)
        c.shot("map-phone-dark")
        c.assert_one_origin()
    finally:
        c.close()


def test_a_scan_submitted_from_the_form_fills_the_waterfall_while_it_runs_and_lists_detections(
    browser, city
):
    c = Console(browser, city)
    try:
        c.login()
        c.go("#/jobs", "jobs")
        c.page.select_option("#submit-type", "spectrum_scan")
        # the API's 422 messages appear next to the fields they are about
        c.page.fill("#f-start_freq_hz", "436e6")
        c.page.fill("#f-stop_freq_hz", "432e6")
        c.page.fill("#f-bin_hz", "five")
        c.page.fill("#f-duration_s", "8")
        c.page.click("#submit-form button[type=submit]")
        c.wait("document.querySelector('[data-error-for=\"bin_hz\"]').textContent.length > 0")
        assert "valid number" in c.page.inner_text('[data-error-for="bin_hz"]')
        c.page.fill("#f-bin_hz", "5e3")
        c.page.click("#submit-form button[type=submit]")
        c.wait("document.querySelector('[data-error-for=\"stop_freq_hz\"]').textContent.length > 0")
        assert "above start_freq_hz" in c.page.inner_text('[data-error-for="stop_freq_hz"]')
        assert c.page.get_attribute("#f-stop_freq_hz", "aria-invalid") == "true"
        c.shot("jobs-422")

        nodes = [city.node_uuid["n1"], city.node_uuid["n4"]]
        c.page.fill("#f-start_freq_hz", "432e6")
        c.page.fill("#f-stop_freq_hz", "436e6")
        c.page.fill("#f-interval_s", "1")
        c.page.fill("#f-node_ids", ",".join(nodes))
        c.page.click("#submit-form button[type=submit]")
        c.wait("document.querySelector('#submit-status a') !== null")
        job_id = c.page.get_attribute("#submit-status a", "title")
        assert city.job(job_id)["parameters"]["node_ids"] == nodes
        # the list follows the job over its WebSocket
        c.wait(f"document.querySelector('tr[data-job=\"{job_id}\"]') !== null")
        c.page.click("#submit-status a")
        c.wait(f"window.drift.view === 'scan' && window.drift.views.scan.jobId === '{job_id}'")

        # non-background pixels in a waterfall, seen while the coordinator says it runs
        deadline = time.monotonic() + 90
        lit, status = 0, None
        while time.monotonic() < deadline:
            lit = c.js(
                "Math.max(0, ...[...window.drift.views.scan.panels.values()]"
                ".map((p) => p.wf.litPixels()))"
            )
            if lit:
                status = city.job(job_id)["status"]
                break
            time.sleep(0.2)
        assert lit > 0, "the waterfall stayed empty"
        assert status == "running", f"first pixels when the job was {status}"
        # the jobs list and the scan view followed it on its live feed
        assert any(url.endswith(f"/api/v1/ws/jobs/{job_id}") for url in c.sockets), c.sockets
        c.shot("scan-running")

        job = city.wait_job(job_id, timeout_s=120)
        assert job["status"] == "completed", job
        c.wait("document.querySelector('#scan-status').textContent === 'completed'")
        scn = load_scenario(CITY)
        truth = [t for t in truth_table(scn, "n1") if 432.05e6 < t["frequency_hz"] < 435.95e6]
        assert {t["id"] for t in truth} >= {"telemetry", "beacon", "voice"}

        def listed():
            rows = c.page.eval_on_selector_all(
                "#detection-table tbody tr",
                "(rows) => rows.map((r) => [r.cells[0].textContent, Number(r.dataset.freq)])",
            )
            freqs = [f for name, f in rows if name == "n1"]
            return all(any(abs(f - t["frequency_hz"]) <= 10e3 for f in freqs) for t in truth)

        wait_for(listed, 30, "every emitter of the band in the detections table")
        wide = c.js(
            "Math.max(...[...window.drift.views.scan.panels.values()].map((p) => p.wf.litPixels()))"
        )
        assert wide > 100
        c.shot("scan")

        # a finished scan: its stored spectrum, with a time slider over its sweeps
        c.page.reload()
        c.wait(f"window.drift.view === 'scan' && window.drift.views.scan.jobId === '{job_id}'")
        c.wait("!document.querySelector('#scan-slider-row').hidden")
        assert int(c.page.get_attribute("#scan-slider", "max")) >= 2
        c.page.focus("#scan-slider")
        c.page.keyboard.press("Home")
        assert "sweep 1 of" in c.page.inner_text("#scan-slider-time")
        c.shot("scan-finished")
        c.assert_one_origin()
    finally:
        c.close()


def test_a_job_is_cancelled_from_the_list_and_the_list_filters_by_status(browser, city):
    job_id = city.submit(
        {
            "type": "spectrum_scan",
            "start_freq_hz": 432e6,
            "stop_freq_hz": 434e6,
            "bin_hz": 10e3,
            "duration_s": 120,
            "node_ids": [city.node_uuid["n2"]],
        }
    )
    c = Console(browser, city)
    try:
        c.login()
        c.go("#/jobs", "jobs")
        row = f'tr[data-job="{job_id}"]'
        c.wait(f"document.querySelector('{row} button') !== null")
        c.page.click(f"{row} button")
        wait_for(lambda: city.job(job_id)["status"] == "cancelled", 30, "the job to be cancelled")
        c.wait(f"document.querySelector('{row} [data-status]').textContent === 'cancelled'")
        c.page.select_option("#filter-status", "cancelled")
        c.page.click("#job-filter button[type=submit]")
        c.wait("[...document.querySelectorAll('#job-table tbody tr')].length === 1")
        assert c.page.get_attribute("#job-table tbody tr", "data-job") == job_id
        c.shot("jobs")
        c.assert_one_origin()
    finally:
        c.close()


def test_admin_shows_templates_awaiting_approval_with_their_code_and_makes_tokens(browser, city):
    capture = (
        (ROOT / "flowgraphs" / "iq_capture.grc")
        .read_text()
        .replace("id: iq_capture", "id: my_capture")
        .replace("title: DRIFT IQ capture", "title: My capture")
    )
    uploaded = city.api("POST", "/flowgraphs", json={"name": "my capture", "content": capture})
    c = Console(browser, city)
    c.page.on("dialog", lambda d: d.accept())
    try:
        c.login()
        c.go("#/admin", "admin")
        assert "admin" in c.page.inner_text("#user-table")
        # what the approval approves: every piece of Python the template runs
        waiting = c.page.inner_text("#template-list")
        assert "Awaiting approval (1)" in waiting and "my capture" in waiting
        for e in uploaded["expressions"]:
            assert e["code"].strip().splitlines()[0] in waiting, e
        c.shot("admin-template")
        c.page.click("#template-list details button")
        wait_for(
            lambda: city.api("GET", f"/flowgraphs/{uploaded['id']}")["approved_at"],
            30,
            "the approval",
        )
        c.wait("document.querySelector('#template-list').textContent.includes('Approved (1)')")
        c.page.click("#enroll-form button[type=submit]")
        c.wait("document.querySelector('#enroll-secret').textContent.includes('dre_')")
        # a 422 for a short password, next to the field
        c.page.fill("#user-form [name=username]", "alice")
        c.page.fill("#user-form [name=password]", "short")
        c.page.click("#user-form button[type=submit]")
        c.wait("document.querySelector('#user-form [data-error-for=\"password\"]').textContent")
        assert "12 characters" in c.page.inner_text('#user-form [data-error-for="password"]')
        c.shot("admin")
        # Swagger UI, from the coordinator's own files
        c.page.goto(city.base + "/docs")
        c.page.wait_for_selector(".swagger-ui .info", timeout=30_000)
        c.shot("docs", full_page=False)
        c.assert_one_origin()
    finally:
        c.close()


def test_a_df_result_draws_its_ellipse_around_the_emitters_true_position(browser, tmp_path_factory):
    scn = load_scenario(TDOA4)
    target = next(e for e in scn.emitters if e.id == "target").position
    with LocalNetwork(
        tmp_path_factory.mktemp("df") / "net", TDOA4, ["n1", "n2", "n3", "n4"]
    ) as net:
        job_id = net.submit(
            {
                "type": "direction_finding",
                "center_freq_hz": 433.92e6,
                "bandwidth_hz": 1e6,
                "method": "tdoa",
                "area": {"lat_deg": target.lat, "lon_deg": target.lon, "radius_m": 5000},
                "duration_s": 0.25,
                "node_count": 4,
            }
        )
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        c = Console(browser, net)
        try:
            c.login()
            # the map draws the fix, its ellipse and lines to the four nodes
            c.wait(f"window.drift.views.map.results.get('{job_id}')")
            assert c.js(f"window.drift.views.map.results.get('{job_id}').lines.length") == 4
            c.shot("map-df", full_page=False)
            c.go(f"#/result/{job_id}", "result")
            c.wait("window.drift.views.result.ellipse() !== null")
            ring = c.js("window.drift.views.result.ellipse()")
            ellipse = Polygon([(lon, lat) for lat, lon in ring])
            result = net.api("GET", f"/jobs/{job_id}/result")
            geo = net.api("GET", f"/jobs/{job_id}/result", params={"format": "geojson"})
            # the drawn polygon is the result's 95 % ellipse, vertex for vertex (Leaflet keeps
            # a ring without its closing point)
            api_ring = next(f for f in geo["features"] if f["properties"]["role"] == "ellipse")
            api_ring = api_ring["geometry"]["coordinates"][0]
            assert len(ring) == len(api_ring) - 1 >= 72
            for (lat, lon), (a_lon, a_lat) in zip(ring, api_ring, strict=False):
                assert abs(lat - a_lat) < 1e-9 and abs(lon - a_lon) < 1e-9
            fix = Point(result["position"]["lon_deg"], result["position"]["lat_deg"])
            assert ellipse.is_valid and ellipse.contains(fix)
            assert result["ellipse_95"]["semi_major_m"] < 100, result["ellipse_95"]
            # around the truth: each capture's noise differs (it is the scenario's at the
            # capture's time), so the truth is inside the 95 % ellipse in 95 % of runs; the
            # test asks it to be inside the 99.9 % one (the drawn ellipse scaled about the fix
            # by sqrt(chi2_99.9 / chi2_95), 2 degrees of freedom) to fail once in a thousand
            wider = affinity.scale(ellipse, CHI2_SCALE, CHI2_SCALE, origin=fix)
            assert wider.contains(Point(target.lon, target.lat)), (result["position"], target)
            rows = c.page.eval_on_selector_all("#result-measurements tbody tr", "(r) => r.length")
            assert rows == len(result["measurements"]) >= 3
            # the GeoJSON download: the coordinator's FeatureCollection, as saved by the page
            with c.page.expect_download() as download:
                c.page.click("#result-geojson")
            saved = json.loads(Path(download.value.path()).read_text())
            assert download.value.suggested_filename == f"drift-{job_id[:8]}.geojson"
            assert saved == net.api("GET", f"/jobs/{job_id}/result", params={"format": "geojson"})
            c.shot("result")
            c.page.click("#result-zoom")
            time.sleep(0.5)  # Leaflet's zoom animation
            c.shot("result-ellipse", full_page=False)
            c.assert_one_origin()
        finally:
            c.close()
