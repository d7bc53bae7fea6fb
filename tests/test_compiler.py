"""The job compiler: templates' parameter blocks, bindings, the grcc cache, and the compiled
flowgraphs run for real (an IQ capture from the simulator, checked sample for sample)."""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from gnuradio.drift import wire

from drift.orchestrator import compiler

SCENARIO = Path(__file__).parent / "data" / "network.yaml"
START = 1_764_000_000


def _ctx(tmp_path, frames_to="", **kw):
    return compiler.NodeContext(
        device_args=f"sim={SCENARIO},node=a",
        job_id="job-1",
        node_id="node-a",
        frames_to=frames_to,
        workdir=str(tmp_path),
        **kw,
    )


def test_every_registered_job_type_has_a_template_a_binding_and_an_analysis():
    from drift.orchestrator.registry import JOB_TYPES

    assert JOB_TYPES, "no job types"
    for name, jt in JOB_TYPES.items():
        assert isinstance(jt.binding, compiler.Binding), name
        if jt.binding is compiler.UPLOADED:
            # each job names its uploaded template
            assert "template_id" in jt.model.model_fields, name
        else:
            template = compiler.load_template(jt.binding.template)
            assert template.id == jt.binding.template
            supplied = set(jt.binding.context) | set(jt.binding.rename)
            # everything else comes from job fields of the same name or the derive step
            assert supplied <= set(template.parameters), name
        # the analysis is a function that exists (imported when the first job needs it)
        module, _, function = jt.analyse.path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_a_job_type_without_a_binding_is_refused_by_the_compiler(tmp_path):
    with pytest.raises(compiler.CompileError, match="unknown job type 'sounding'"):
        compiler.compile_job("sounding", {}, _ctx(tmp_path))


def test_a_template_parameter_nothing_supplies_is_an_error(tmp_path):
    template = compiler.load_template("spectrum_scan")
    binding = compiler.Binding("spectrum_scan", context=frozenset({"job_id"}))
    with pytest.raises(compiler.CompileError, match="nothing supplies"):
        binding.values(template, {"start_freq_hz": 1e8}, _ctx(tmp_path))


def test_a_job_field_that_reaches_no_parameter_is_an_error(tmp_path):
    job = {
        "start_freq_hz": 430e6,
        "stop_freq_hz": 432e6,
        "bin_hz": 5e3,
        "duration_s": 1,
        "interval_s": 1,
        "gain_db": None,
        "node_count": 1,
        "node_ids": None,
        "surprise": 1,
    }
    with pytest.raises(compiler.CompileError, match="surprise"):
        compiler.compile_job("spectrum_scan", job, _ctx(tmp_path), cache=tmp_path / "cache")


def test_grcc_output_is_cached_by_content_hash(tmp_path):
    cache = tmp_path / "cache"
    template = compiler.load_template("iq_capture")
    t0 = time.monotonic()
    first = compiler.compile_grc(template, cache)
    cold = time.monotonic() - t0
    stamp = first.stat().st_mtime_ns
    t0 = time.monotonic()
    again = compiler.compile_grc(template, cache)
    warm = time.monotonic() - t0
    assert again == first and first.stat().st_mtime_ns == stamp
    assert (
        first.parent.name
        == hashlib.sha256(f"{template.sha256}:{compiler.blocks_fingerprint()}".encode()).hexdigest()
    )
    assert warm < cold  # no second grcc run (a file check against a process start)
    edited = compiler.parse_template(template.content.replace(b"DRIFT IQ capture", b"edited"))
    assert compiler.compile_grc(edited, cache) != first


def test_a_changed_block_definition_compiles_the_template_again(tmp_path, monkeypatch):
    """The same .grc makes different code when a DRIFT block's definition changes (a new
    parameter, a new make line): the cached program is not reused."""
    cache = tmp_path / "cache"
    template = compiler.load_template("iq_capture")
    first = compiler.compile_grc(template, cache)
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    installed = Path(compiler.FLOWGRAPHS_DIR.parent / "grc" / "drift_iq_sink.block.yml")
    (blocks / "drift_iq_sink_copy.block.yml").write_text(
        installed.read_text().replace("id: drift_iq_sink", "id: drift_iq_sink_copy")
    )
    monkeypatch.setenv(
        "GRC_BLOCKS_PATH", os.pathsep.join([os.environ.get("GRC_BLOCKS_PATH", ""), str(blocks)])
    )
    monkeypatch.setattr(compiler, "_BLOCKS_FINGERPRINT", None)
    second = compiler.compile_grc(template, cache)
    assert second != first and second.exists()


def test_iq_capture_sends_timestamped_frames_equal_to_the_captured_samples(tmp_path):
    ctx_sock = zmq.Context.instance()
    pull = ctx_sock.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    rate, duration = 1e6, 0.2
    job = {"center_freq_hz": 432e6, "samp_rate_hz": rate, "duration_s": duration, "snippet": 50000}
    start = START + 0.3125  # a timed start: the simulated device streams from a little before
    cmd = compiler.compile_job(
        compiler.IQ_CAPTURE,
        job,
        _ctx(tmp_path, f"tcp://127.0.0.1:{port}", start_time=start),
        cache=tmp_path / "cache",
    )
    lead = compiler.SIM_LEAD_IN_S
    assert f"--device-args=sim={SCENARIO},node=a,start={start - lead!r}" in cmd.argv
    assert f"--start-time={start!r}" in cmd.argv
    proc = subprocess.run(
        cmd.argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = []
    while pull.poll(2000):
        frames.append(wire.decode(pull.recv_multipart()))
    pull.close(linger=0)
    n = int(rate * duration)
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert [len(f.payload) for f in frames] == [50000] * 4
    captured = np.fromfile(tmp_path / "iq.cf32", np.complex64)
    assert len(captured) == n
    assert np.array_equal(np.concatenate([f.payload for f in frames]), captured)
    # the device started `lead` before the start: the capture's first sample is the first at
    # or after the start (node a has a perfect clock: rx_time is its start plus the count)
    # the simulated device's start on its clock, as it reads its start= (whole + fraction)
    whole = math.floor(start - lead)
    frac = (start - lead) - whole
    skip = math.ceil(((START - whole) + (start - START - frac)) * rate - 1e-6)
    first_frac = frac + skip / rate  # seconds after `whole`
    assert 0 <= (whole - START) + first_frac - (start - START) < 1 / rate
    for k, f in enumerate(frames):
        t = first_frac + k * 50000 / rate
        assert f.time_s == whole + math.floor(t)
        assert f.time_frac == pytest.approx(t % 1, abs=1e-9)
        assert f.meta["center_freq_hz"] == 432e6 and f.meta["samp_rate_hz"] == rate
        assert (f.meta["job_id"], f.meta["node_id"]) == ("job-1", "node-a")
        assert f.meta["flowgraph_hash"] == cmd.template.sha256
    # the samples are the simulator's: the same node, start and rate give the same IQ
    from drift.sim import load_scenario
    from drift.sim.synth import NodeReceiver

    rx = NodeReceiver(load_scenario(SCENARIO), "a", rate, 432e6)
    ref = rx.samples(skip, 1000, whole, frac)
    assert np.allclose(captured[:1000], ref, atol=1e-6)
