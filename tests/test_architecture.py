"""The structure, as tests: gr-drift stands alone (installed without DRIFT, its GRC blocks load
and a flowgraph of them runs), its analysis libraries import without GNU Radio's runtime, and
the import rules of docs/architecture.md hold (import-linter)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
import zmq
from gnuradio.drift import wire

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """gr-drift installed alone into a fresh prefix (the CMake build of this checkout), and
    the environment of a radio amateur who has nothing else of DRIFT: Debian's Python, no
    DRIFT package, no GRC configuration of ours."""
    tmp = tmp_path_factory.mktemp("standalone")
    prefix = tmp / "prefix"
    subprocess.run(
        ["cmake", "--install", str(ROOT / "build" / "blocks"), "--prefix", str(prefix)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = next(prefix.glob("lib/python3*/site-packages"))
    home = tmp / "home"
    home.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(site),
        "PYTHONNOUSERSITE": "1",
        "LD_LIBRARY_PATH": str(prefix / "lib"),
        "GRC_BLOCKS_PATH": str(prefix / "share" / "gnuradio" / "grc" / "blocks"),
    }
    return tmp, prefix, env


def test_gr_drift_installed_alone_loads_every_block_of_its_grc_tree(standalone):
    tmp, prefix, env = standalone
    ours = sorted(yaml.safe_load(p.read_text())["id"] for p in (ROOT / "grc").glob("*.block.yml"))
    script = textwrap.dedent(f"""
        import importlib.util, json
        assert importlib.util.find_spec("drift") is None, "the DRIFT package is importable"
        from gnuradio import gr, drift
        from gnuradio.grc.core.platform import Platform
        platform = Platform(version=gr.version(), prefs=gr.prefs(), version_parts=(
            gr.major_version(), gr.api_version(), gr.minor_version()))
        platform.build_library()
        missing = [b for b in {ours!r} if b not in platform.blocks]
        assert not missing, missing
        # every block the tree lists can be made, from Python alone
        for name in ("psd", "sweeper", "sweep_detector", "detector", "frame_sink", "iq_sink",
                     "timed_head", "time_tagger", "align", "tdoa", "bearing", "ref_sync"):
            assert callable(getattr(drift, name)), name
        print(json.dumps(sorted(platform.blocks)))
    """)
    r = subprocess.run(
        [SYSTEM_PYTHON, "-c", script], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]


def test_a_scan_flowgraph_of_gr_drift_alone_runs_and_sends_its_detections(standalone):
    """flowgraphs/spectrum_scan.grc (Device Source with the test signal -> Sweeper -> PSD ->
    Sweep Detector -> Frame Sink), compiled by grcc and run with only gr-drift installed:
    its frames arrive over ZeroMQ, and the test signal's strongest tones are detected."""
    tmp, prefix, env = standalone
    out = tmp / "fg"
    out.mkdir(exist_ok=True)
    r = subprocess.run(
        ["grcc", "-o", str(out), str(ROOT / "flowgraphs" / "spectrum_scan.grc")],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    port = _free_port()
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{port}")
    try:
        run = subprocess.run(
            [
                SYSTEM_PYTHON,
                str(out / "spectrum_scan.py"),
                "--device-args",
                "testsig",
                "--start-freq-hz",
                "93e6",
                "--stop-freq-hz",
                "96e6",
                "--samp-rate-hz",
                "2.4e6",
                "--fft-size",
                "512",
                "--n-avg",
                "20",
                "--sweeps",
                "2",
                "--job-id",
                "alone",
                "--node-id",
                "n",
                "--frames-to",
                f"tcp://127.0.0.1:{port}",
                "--output",
                str(tmp / "psd.f32"),
            ],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        frames = []
        while pull.poll(3000):
            frames.append(wire.decode(pull.recv_multipart()))
    finally:
        pull.close(linger=0)
    psd = [f for f in frames if f.frame_type == wire.PSD]
    found = [d for f in frames if f.frame_type == wire.DETECTION for d in f.payload]
    assert psd and all(f.meta["job_id"] == "alone" for f in psd)
    bin_hz = 2.4e6 / 512
    # the test signal's 94.7 MHz emitter (-55 dBm, 180 kHz wide): detected at its place
    assert any(abs(d["center_freq_hz"] - 94.7e6) < 180e3 / 2 + bin_hz for d in found), found


def test_df_and_the_wire_format_import_without_gnu_radios_runtime(tmp_path):
    """An analysis-only coordinator has no GNU Radio: gnuradio.drift.df locates and
    gnuradio.drift.wire decodes with NumPy and SciPy alone (GNU Radio's runtime, pmt and the
    compiled module are made unimportable here)."""
    script = textwrap.dedent("""
        import sys, importlib.abc

        class NoGnuRadio(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name in ("pmt", "gnuradio.gr", "gnuradio.drift.drift_python") \\
                        or name.startswith(("pmt.", "gnuradio.gr.")):
                    raise ImportError(f"{name} is not installed here")
                return None

        sys.meta_path.insert(0, NoGnuRadio())
        import numpy as np
        from gnuradio.drift import df, wire
        sensors = np.array([[0.0, 0.0], [5000.0, 0.0], [0.0, 5000.0], [5000.0, 5000.0]])
        truth = np.array([1200.0, 2100.0])
        r = np.linalg.norm(sensors - truth, axis=1) / df.SPEED_OF_LIGHT_M_S
        fix = df.locate_tdoa(sensors, r[1:] - r[0], tdoa_std_s=1e-9)
        assert np.linalg.norm(fix.position_enu_m - truth) < 1.0, fix.position_enu_m
        frame = wire.Frame(wire.PSD, 7, 1_796_000_000, 0.5, 1e-6, {"job_id": "j"},
                           np.arange(4, dtype=np.float32))
        back = wire.decode(wire.encode(frame))
        assert back.seq == 7 and list(back.payload) == [0, 1, 2, 3]
        assert "gnuradio.gr" not in sys.modules and "pmt" not in sys.modules
        print("ok")
    """)
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ},
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_the_import_rules_hold(tmp_path):
    """docs/architecture.md's rules, as import-linter contracts (pyproject.toml), on the
    source: gnuradio.drift is read from blocks/python/drift (a package gnuradio that holds only
    it is put first on the path), drift.orchestrator and drift.api through their links."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (pip install -e .[dev])"
    (tmp_path / "gnuradio").mkdir()
    (tmp_path / "gnuradio" / "__init__.py").write_text("")
    (tmp_path / "gnuradio" / "drift").symlink_to(ROOT / "blocks" / "python" / "drift")
    r = subprocess.run(
        [lint, "--no-logo", "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in r.stdout, r.stdout[-2000:]
