#!/usr/bin/env python3
"""Benchmark: the web console in Debian's headless Chromium (Playwright), against a real
coordinator (``drift serve``).

1. Time to first render of the map with 1,000 enrolled nodes: from the navigation's start (a
   logged-in reload of ``/#/map``) to the animation frame after Leaflet drew the 1,000
   markers, median and range over several reloads; with the part spent fetching
   ``GET /api/v1/nodes`` (the browser's resource timing). The baseline in the same run is the
   same page with 4 nodes.
2. The waterfall and spectrum of one node (the scan view's own panel: ``NodePanel`` of
   ``scan.js``) fed 4,096-bin PSD frames at 10 a second for 10 s, each a whole sweep, each
   parsed from the JSON the live feed sends: rows drawn per second, and the page's script
   time per frame (parse + waterfall + spectrum, mean and p99). Then as fast as the page
   takes them for 3 s: the frame rate it could sustain.

Prints figures; never fails on a time.

    .venv/bin/python bench/console.py [--nodes 1000] [--reloads 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from drift.localnet import LocalNetwork

ROOT = Path(__file__).resolve().parent.parent
CITY = ROOT / "examples" / "scenarios" / "city.yaml"
CHROMIUM = "/usr/bin/chromium"

FEED = """
async ({ fps, seconds, bins, flood }) => {
  const { NodePanel } = await import("/static/console/scan.js");
  const box = document.querySelector("#scan-nodes");
  box.replaceChildren();
  const job = { parameters: { start_freq_hz: 430e6, stop_freq_hz: 440e6,
    bin_hz: 10e6 / bins, duration_s: 600, interval_s: 0.1 } };
  const panel = new NodePanel(box, "bench", job, 0);
  const wf = panel.wf;
  let draws = 0, plots = 0;
  const draw = wf.draw.bind(wf);
  const costs = [];
  wf.draw = () => { const t = performance.now(); draw(); costs.push(performance.now() - t); draws++; };
  const setData = panel.plot.setData.bind(panel.plot);
  panel.plot.setData = (d) => { const t = performance.now(); setData(d); costs.push(performance.now() - t); plots++; };
  // 4,096 bins of noise with three carriers, as the live feed sends them (JSON, 2 decimals)
  const messages = [];
  for (let k = 0; k < 8; k++) {
    const psd = new Array(bins);
    for (let i = 0; i < bins; i++) psd[i] = Math.round((-170 + 3 * Math.random()) * 100) / 100;
    for (const c of [500, 1800, 3300]) for (let i = -6; i <= 6; i++) psd[c + i + k] = -110 - Math.abs(i);
    messages.push(JSON.stringify({ type: "psd", node_id: "bench", seq: 0, time_unix_s: 0,
      center_freq_hz: 435e6, bin_hz: 10e6 / bins, psd_db: psd }));
  }
  const perFrame = [];
  let seq = 0;
  const feed = () => {
    const t = performance.now();
    const msg = JSON.parse(messages[seq % messages.length]);
    msg.seq = seq++;
    msg.time_unix_s = Date.now() / 1000;
    panel.add(msg);
    perFrame.push(performance.now() - t);
  };
  const t0 = performance.now();
  if (flood) {
    // as fast as the page takes them, yielding to rendering between frames
    while (performance.now() - t0 < seconds * 1000) {
      feed();
      await new Promise((r) => setTimeout(r, 0));
    }
  } else {
    await new Promise((done) => {
      const timer = setInterval(() => {
        feed();
        if (performance.now() - t0 >= seconds * 1000) { clearInterval(timer); done(); }
      }, 1000 / fps);
    });
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const elapsed = (performance.now() - t0) / 1000;
  // the frame's own cost plus its share of the drawing done on animation frames
  const drawMs = costs.reduce((a, b) => a + b, 0);
  perFrame.sort((a, b) => a - b);
  return { frames: seq, elapsed, draws, plots, drawMs,
    meanMs: perFrame.reduce((a, b) => a + b, 0) / perFrame.length + drawMs / seq,
    p99FeedMs: perFrame[Math.floor(perFrame.length * 0.99)],
    lit: wf.litPixels(), columns: wf.columns };
}
"""


def first_render(page, base: str, reloads: int, expect: int) -> tuple[list[float], list[float]]:
    totals, fetches = [], []
    for _ in range(reloads):
        page.goto(base + "/#/map")
        page.reload()
        page.wait_for_function(
            "() => window.drift && window.drift.views.map.firstRenderMs", timeout=120_000
        )
        drawn = page.evaluate("() => window.drift.views.map.nodes.describe().length")
        assert drawn == expect, (drawn, expect)
        totals.append(page.evaluate("() => window.drift.views.map.firstRenderMs"))
        fetches.append(
            page.evaluate(
                "() => { const e = performance.getEntriesByType('resource')"
                ".filter((r) => r.name.endsWith('/api/v1/nodes')); "
                "return e.length ? e[0].responseEnd - e[0].startTime : null; }"
            )
        )
    return totals, fetches


def enrol(net: LocalNetwork, n: int) -> None:
    # a grid of about 60 x 17 km around Munich
    for i in range(n):
        net.enroll(f"bench{i:04d}", 48.0 + (i % 40) * 0.015, 11.2 + (i // 40) * 0.03)


def login(page, net: LocalNetwork) -> None:
    page.goto(net.base + "/")
    page.fill("#login-username", "admin")
    page.fill("#login-password", net.password)
    page.click("#login-form button[type=submit]")
    page.wait_for_function("() => window.drift.view === 'map' && window.drift.ready")


def summary(ms: list[float]) -> str:
    return f"median {statistics.median(ms):.0f} ms (range {min(ms):.0f}-{max(ms):.0f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--reloads", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="drift-console-bench-") as tmp:
        with LocalNetwork(Path(tmp) / "net", CITY, []) as net, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            enrol(net, 4)
            login(page, net)
            base_totals, base_fetch = first_render(page, net.base, args.reloads, 4)
            t = time.monotonic()
            enrol(net, args.nodes - 4)
            print(f"==> enrolled {args.nodes} nodes in {time.monotonic() - t:.0f} s", flush=True)
            time.sleep(1.5)  # the node list is cached for node_list_cache_s
            totals, fetch = first_render(page, net.base, args.reloads, args.nodes)
            print(f"map, first render of {args.nodes} nodes: {summary(totals)}")
            print(f"    of which GET /nodes: {summary(fetch)}")
            print(f"map, first render of 4 nodes (baseline): {summary(base_totals)}")
            print(f"    of which GET /nodes: {summary(base_fetch)}")
            print(
                f"    ratio {statistics.median(totals) / statistics.median(base_totals):.2f}x",
                flush=True,
            )

            page.goto(net.base + "/#/scan")
            page.wait_for_function("() => window.drift.view === 'scan' && window.drift.ready")
            paced = page.evaluate(FEED, {"fps": 10, "seconds": 10, "bins": 4096, "flood": False})
            print(
                f"waterfall, 10 frames/s of {paced['columns']} bins for {paced['elapsed']:.1f} s:"
                f" {paced['frames']} frames, {paced['draws'] / paced['elapsed']:.1f} rows drawn/s,"
                f" {paced['plots'] / paced['elapsed']:.1f} spectrum redraws/s;"
                f" script {paced['meanMs']:.2f} ms a frame (p99 of parse+add"
                f" {paced['p99FeedMs']:.2f} ms), {paced['lit']} lit pixels"
            )
            flood = page.evaluate(FEED, {"fps": 0, "seconds": 3, "bins": 4096, "flood": True})
            print(
                f"waterfall, as fast as taken: {flood['frames'] / flood['elapsed']:.0f} frames/s,"
                f" {flood['draws'] / flood['elapsed']:.0f} rows drawn/s,"
                f" {flood['meanMs']:.2f} ms a frame"
            )
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
