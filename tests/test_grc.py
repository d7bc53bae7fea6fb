"""GNU Radio Companion: the DRIFT block definitions load, and every flowgraph compiles and runs.

As GNU Radio's own grc/tests/test_examples.py: the block library is loaded with GRC's
Platform, then every .grc under flowgraphs/ and examples/ is compiled with grcc (no skip list).
"""

import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BLOCKS_PATH = ROOT / ".prefix" / "share" / "gnuradio" / "grc" / "blocks"
FLOWGRAPHS = sorted((ROOT / "flowgraphs").rglob("*.grc")) + sorted(
    (ROOT / "examples").rglob("*.grc")
)
BLOCK_FILES = sorted((ROOT / "grc").glob("*.block.yml"))


def grc_env():
    env = dict(os.environ)
    env["GRC_BLOCKS_PATH"] = str(BLOCKS_PATH)
    return env


@pytest.fixture(scope="module")
def platform():
    from gnuradio import gr
    from gnuradio.grc.core.platform import Platform

    os.environ["GRC_BLOCKS_PATH"] = str(BLOCKS_PATH)
    p = Platform(
        version=gr.version(),
        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
        prefs=gr.prefs(),
    )
    p.build_library()
    return p


def test_every_block_file_is_installed_and_loads(platform):
    assert BLOCK_FILES, "no block definitions in grc/"
    for path in BLOCK_FILES:
        block_id = yaml.safe_load(path.read_text())["id"]
        assert (BLOCKS_PATH / path.name).exists(), f"{path.name} is not installed"
        assert block_id in platform.blocks, f"GRC did not load {block_id}"
        block = platform.blocks[block_id]
        assert block.category[0] == "DRIFT", (block_id, block.category)  # from the tree file
        assert len(block.documentation.get("", "")) > 100, f"{block_id} is undocumented"


def test_category_tree_lists_every_block():
    tree = yaml.safe_load((ROOT / "grc" / "drift.tree.yml").read_text())
    listed = {b for group in tree["[DRIFT]"] for blocks in group.values() for b in blocks}
    ids = {yaml.safe_load(p.read_text())["id"] for p in BLOCK_FILES}
    assert listed == ids


@pytest.mark.parametrize("path", FLOWGRAPHS, ids=[p.name for p in FLOWGRAPHS])
def test_flowgraph_compiles(path, tmp_path):
    r = subprocess.run(
        ["grcc", "-o", str(tmp_path), str(path)],
        env=grc_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        tmp_path / f"{yaml.safe_load(path.read_text())['options']['parameters']['id']}.py"
    ).exists()


def test_spectrum_scan_flowgraph_runs(tmp_path):
    """The job template, compiled and run on the test signal: one PSD vector per hop."""
    subprocess.run(
        ["grcc", "-o", str(tmp_path), str(ROOT / "flowgraphs" / "spectrum_scan.grc")],
        env=grc_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "psd.f32"
    tone_hz, tone_dbm = 100.5e6, -60.0
    r = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "spectrum_scan.py"),
            "--device-args",
            f"testsig,tones={tone_hz:.0f}@{tone_dbm}",
            "--start-freq-hz",
            "99e6",
            "--stop-freq-hz",
            "102e6",
            "--samp-rate-hz",
            "1e6",
            "--fft-size",
            "512",
            "--n-avg",
            "20",
            "--sweeps",
            "2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    from gnuradio import drift

    plan = drift.plan_hops(99e6, 102e6, 1e6, 1e6 / 512, n_avg=20, usable=0.75)
    rows = np.fromfile(out, dtype=np.float32).reshape(-1, 512)
    assert rows.shape[0] == 2 * len(plan.hops)
    spectrum = drift.stitch(plan, dict(enumerate(rows[: len(plan.hops)])))
    f = plan.freqs_hz
    i = int(np.argmin(np.abs(f - tone_hz)))
    power = 10 * np.log10(np.sum(10 ** (spectrum[i - 4 : i + 5] / 10)) * plan.bin_hz)
    assert power == pytest.approx(tone_dbm, abs=0.5)
    assert np.median(spectrum) == pytest.approx(-150.0, abs=0.5)


def test_continuous_tdoa_example_fixes_the_scenarios_emitter(tmp_path, monkeypatch):
    """examples/continuous_tdoa.grc, compiled and run on the simulator as fast as it goes: four
    nodes, align, DRIFT TDOA Multi (the six pairs), the solver; its fixes land on the
    scenario's emitter."""
    subprocess.run(
        ["grcc", "-o", str(tmp_path), str(ROOT / "examples" / "continuous_tdoa.grc")],
        env=grc_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(ROOT)
    import pymap3d
    from continuous_tdoa import continuous_tdoa

    scenario = yaml.safe_load((ROOT / "examples" / "scenarios" / "tdoa4.yaml").read_text())
    e = scenario["emitters"][0]["position"]
    tb = continuous_tdoa(realtime=0, n_samples=16384)
    loc = tb.drift_tdoa_locate_0
    assert tb.drift_tdoa_multi_0.pairs() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    store = gr_message_store(tb, loc)
    tb.start()
    try:
        deadline = time.monotonic() + 90
        while loc.fixes() < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    assert loc.fixes() >= 4
    assert loc.failures() == 0
    import pmt

    for k in range(store.num_messages()):
        fix = pmt.to_python(pmt.car(store.get_message(k)))
        east, north, _ = pymap3d.geodetic2enu(
            fix["lat_deg"], fix["lon_deg"], e["alt"], e["lat"], e["lon"], e["alt"]
        )
        # 20 dB at each node, 6.8 ms of signal: metres (the sim's clocks are exact here)
        assert np.hypot(east, north) < 5.0, fix


def gr_message_store(tb, block):
    """A message_debug storing what `block` publishes on "fixes" (besides the .grc's own)."""
    from gnuradio import blocks

    store = blocks.message_debug()
    tb.msg_connect(block, "fixes", store, "store")
    tb._test_store = store  # kept with the flowgraph
    return store
