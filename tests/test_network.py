"""The network end to end, as real processes: ``drift serve`` (coordinator and collector) and one
``drift node`` agent per simulated receiver, each running its assignment as a compiled GNU Radio
flowgraph whose frames travel over ZeroMQ through the agent's spool to the collector.

Oracles: the scenario's truth at each node's antenna (``drift.sim.render.truth_table``), and the
job and assignment records the coordinator keeps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from drift import netdemo
from drift.localnet import LocalNetwork, wait_for
from drift.orchestrator import compiler
from drift.orchestrator.detections import NodeDetection
from drift.sim import load_scenario
from drift.sim.render import truth_table

SCENARIO = Path(__file__).parent / "data" / "network.yaml"

SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 436e6,
    "bin_hz": 5e3,
    "interval_s": 1.0,
    "duration_s": 2.0,
}


def test_rest_job_runs_on_nodes_and_every_emitter_is_found_at_its_true_power(tmp_path):
    scn = load_scenario(SCENARIO)
    nodes = ["a", "b", "c"]
    with LocalNetwork(tmp_path / "net", SCENARIO, nodes) as net:
        job_id = net.submit({**SCAN, "node_count": 3})
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        assert sorted(a["state"] for a in job["assignments"]) == ["completed"] * 3

        def all_stored():
            frames = {n: net.spectrum(job_id, n) for n in nodes}
            return frames if all(len(f) >= 2 * 4 for f in frames.values()) else None

        frames = wait_for(all_stored, 30, "every node's frames in the store")

        # the collector's counts are stored with the job: everything received, nothing lost
        def counted():
            streams = net.api("GET", f"/spectrum/{job_id}", params={"limit": 1})["streams"]
            psd = [s for s in streams if s["type"] == "psd"]
            return psd if len(psd) == 3 else None

        streams = wait_for(counted, 30, "the collector's per-node counts")
        by_node = {s["node_id"]: s for s in streams}
        for node in nodes:
            s = by_node[net.node_uuid[node]]
            assert (s["received"], s["lost"]) == (len(frames[node]), 0)
        for node in nodes:
            rows = frames[node]
            # frames arrive complete and once: sequence numbers 0..n-1, in time order
            assert [f["seq"] for f in rows] == list(range(len(rows)))
            assert all(np.diff([f["time_unix_s"] for f in rows]) > 0)
            freqs, sweeps = netdemo.stitch(rows)
            bin_hz = rows[0]["bin_hz"]
            assert freqs[0] <= SCAN["start_freq_hz"] + bin_hz
            assert freqs[-1] >= SCAN["stop_freq_hz"] - bin_hz
            # the node's own detections, made by its flowgraph on every sweep
            found = [
                NodeDetection.model_validate(d)
                for d in net.api(
                    "GET", f"/jobs/{job_id}/detections", params={"node_id": net.node_uuid[node]}
                )["detections"]
            ]
            for row in netdemo.compare(truth_table(scn, node), found):
                d = row["found"]
                assert d is not None, f"node {node}: {row['id']} not detected"
                assert abs(d.center_freq_hz - row["frequency_hz"]) <= bin_hz, (node, row["id"])
                assert abs(d.power_dbm - row["power_dbm"]) <= 2.0, (
                    f"node {node}: {row['id']} measured {d.power_dbm:.2f} dBm, "
                    f"truth {row['power_dbm']:.2f} dBm"
                )


def test_a_band_narrower_than_one_hop_is_scanned_where_it_is(tmp_path):
    """A scan whose whole band fits one hop: the device is tuned to that hop's centre from
    the start (there is no retune to put it there), so the CW emitter in the band is found at
    its true frequency and power, not shifted by the hop's unused edge."""
    scn = load_scenario(SCENARIO)
    cw = next(e for e in scn.emitters if e.id == "cw")
    band = {"start_freq_hz": cw.frequency_hz - 100e3, "stop_freq_hz": cw.frequency_hz + 100e3}
    with LocalNetwork(tmp_path / "net", SCENARIO, ["a"]) as net:
        job_id = net.submit({**SCAN, **band, "bin_hz": 2e3, "node_count": 1})
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        rows = wait_for(lambda: net.spectrum(job_id, "a"), 30, "the node's frames")
        assert len({f["center_freq_hz"] for f in rows}) == 1, "one hop"
        found = [
            NodeDetection.model_validate(d)
            for d in net.api("GET", f"/jobs/{job_id}/detections")["detections"]
        ]
        truth = [t for t in truth_table(scn, "a") if t["id"] == "cw"]
        (row,) = netdemo.compare(truth, found)
        d = row["found"]
        assert d is not None, f"cw not detected; detections at {[x.center_freq_hz for x in found]}"
        assert abs(d.center_freq_hz - cw.frequency_hz) <= rows[0]["bin_hz"]
        assert abs(d.power_dbm - row["power_dbm"]) <= 2.0


def test_kill_9_of_a_node_agent_mid_job_moves_its_assignment_and_the_job_completes(tmp_path):
    # paced to the wall clock, so the job is still running when its node dies
    with LocalNetwork(
        tmp_path / "net",
        SCENARIO,
        ["a", "b", "c"],
        device_options=",realtime=1",
        heartbeat_timeout_s=4.0,
    ) as net:
        job_id = net.submit({**SCAN, "duration_s": 6.0, "node_count": 2})

        def running():
            job = net.job(job_id)
            started = [a for a in job["assignments"] if a["state"] == "running"]
            return started if job["status"] == "running" and started else None

        victim_uuid = wait_for(running, 60, "an assignment to start")[0]["node_id"]
        victim = next(n for n, u in net.node_uuid.items() if u == victim_uuid)
        time.sleep(1.0)
        net.kill_node(victim)  # SIGKILL: no goodbye, and its flowgraph dies with it

        job = net.wait_job(job_id, timeout_s=120)
        assert job["status"] == "completed", job
        lost = [a for a in job["assignments"] if a["node_id"] == victim_uuid]
        assert [a["state"] for a in lost] == ["reassigned"]
        replacement = [a for a in job["assignments"] if a["replaces_id"] == lost[0]["id"]]
        assert len(replacement) == 1 and replacement[0]["state"] == "completed"
        assert replacement[0]["node_id"] not in (victim_uuid,)
        node_doc = net.api("GET", f"/nodes/{victim_uuid}")
        assert node_doc["status"] == "offline"
        # the replacement's frames are in the store, complete
        survivor = next(n for n, u in net.node_uuid.items() if u == replacement[0]["node_id"])
        rows = net.spectrum(job_id, survivor)
        assert rows and [f["seq"] for f in rows] == list(range(len(rows)))


def test_node_config_errors_name_the_file_and_field(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "node.yaml"
    bad.write_text("coordinator: http://127.0.0.1:1\ndevice: testsig\nheartbeat_interval_s: -1\n")
    r = subprocess.run(
        [sys.executable, "-m", "drift.cli", "node", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "node.yaml:3: heartbeat_interval_s: Input should be greater than 0" in r.stderr
    missing = tmp_path / "nope.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "drift.cli", "node", "--config", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "nope.yaml" in r.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not: [valid", "YAML"),
        (b"options: {parameters: {id: x, generate_options: qt_gui}}\nblocks: []\n", "no_gui"),
        (b"options: {parameters: {id: 'bad id'}}\nblocks: []\n", "identifier"),
    ],
)
def test_template_validation_refuses_what_cannot_run_headless(content, message):
    with pytest.raises(compiler.CompileError, match=message):
        compiler.parse_template(content)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_cancel_stops_the_flowgraph_on_the_node(tmp_path):
    with LocalNetwork(tmp_path / "net", SCENARIO, ["a"], device_options=",realtime=1") as net:
        job_id = net.submit({**SCAN, "duration_s": 60.0, "node_count": 1})
        wait_for(lambda: net.job(job_id)["status"] == "running", 60, "the job to run")
        pid_file = wait_for(
            lambda: next((tmp_path / "net" / "node-a" / "jobs").glob("*/pid"), None),
            30,
            "the flowgraph's pid file",
        )
        pid = int(pid_file.read_text())
        assert _alive(pid)
        net.api("POST", f"/jobs/{job_id}/cancel")
        assert net.job(job_id)["status"] == "cancelled"
        wait_for(lambda: not _alive(pid), 30, "the node to stop the cancelled flowgraph")


def test_a_node_that_loses_the_coordinator_keeps_running_and_nothing_is_lost(tmp_path):
    with LocalNetwork(
        tmp_path / "net", SCENARIO, ["a"], device_options=",realtime=1", heartbeat_timeout_s=15.0
    ) as net:
        job_id = net.submit({**SCAN, "duration_s": 8.0, "node_count": 1})
        wait_for(lambda: net.job(job_id)["status"] == "running", 60, "the job to run")
        time.sleep(1.5)
        net.stop_coordinator()  # the API, scheduler and collector all go away
        pid = int(next((tmp_path / "net" / "node-a" / "jobs").glob("*/pid")).read_text())
        time.sleep(3.0)
        assert _alive(pid), "the flowgraph must keep running without the coordinator"
        net.start_coordinator()
        job = net.wait_job(job_id, timeout_s=120)
        assert job["status"] == "completed", job
        psd = tmp_path / "net" / "node-a" / "jobs" / job["assignments"][0]["id"] / "psd.f32"

        def complete():
            rows = net.spectrum(job_id, "a")
            return (
                rows
                if rows and len(rows) * 4 * len(rows[0]["psd_db"]) >= psd.stat().st_size
                else None
            )

        rows = wait_for(complete, 30, "every frame the flowgraph made to be stored")
        # nothing lost, nothing twice, in order: the node's own file is the oracle
        assert [f["seq"] for f in rows] == list(range(len(rows)))
        local = np.fromfile(psd, np.float32).reshape(len(rows), -1)
        stored = np.array(
            [[-np.inf if v is None else v for v in f["psd_db"]] for f in rows], np.float32
        )
        assert np.array_equal(local, stored)


def test_websocket_streams_job_events_and_live_spectrum(tmp_path):
    import json

    from websockets.sync.client import connect

    with LocalNetwork(tmp_path / "net", SCENARIO, ["a"], device_options=",realtime=1") as net:
        ws_base = net.base.replace("http://", "ws://") + "/api/v1/ws/jobs/"
        token = net._headers["Authorization"].split()[1]
        job_id = net.submit({**SCAN, "duration_s": 4.0, "node_count": 1})
        messages = []
        with connect(f"{ws_base}{job_id}?token={token}", open_timeout=30) as ws:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=60))
                messages.append(msg)
                if msg["type"] == "end":
                    break
        kinds = [m["type"] for m in messages]
        assert kinds[0] == "job" and kinds[-1] == "end" and messages[-1]["status"] == "completed"
        steps = [m["to_status"] for m in messages if m["type"] in ("transition",)]
        assert "completed" in steps
        psd = [m for m in messages if m["type"] == "psd"]
        assert psd, kinds
        assert {m["node_id"] for m in psd} == {net.node_uuid["a"]}
        # what was streamed is what was stored
        stored = {f["seq"]: f for f in net.spectrum(job_id, "a")}
        for m in psd:
            assert m["psd_db"] == [
                None if v is None else round(v, 2) for v in stored[m["seq"]]["psd_db"]
            ]
        # refusals: no credentials, no such job
        from websockets.exceptions import ConnectionClosed

        for url, code in [
            (f"{ws_base}{job_id}", 4401),
            (f"{ws_base}00000000-0000-0000-0000-000000000000?token={token}", 4404),
        ]:
            with pytest.raises(ConnectionClosed) as err, connect(url, open_timeout=30) as ws:
                ws.recv(timeout=30)
            assert err.value.rcvd.code == code


def test_a_node_retries_an_unreachable_coordinator_with_backoff_in_one_line_each(tmp_path):
    """No coordinator at the address: the agent keeps trying to enrol, waiting 1, 2, 4 s,
    each attempt one line (no traceback); SIGTERM ends it with status 0."""
    import re
    import signal
    import subprocess
    import sys

    from drift.localnet import free_port

    cfg = tmp_path / "node.yaml"
    cfg.write_text(
        f"coordinator: http://127.0.0.1:{free_port()}\nenrollment_token: drift-enroll-x\n"
        f"name: lonely\ndevice: testsig\nstate_dir: {tmp_path / 'state'}\n"
        "location: {lat_deg: 52.1, lon_deg: 4.3, alt_m: 12}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "drift.cli", "node", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        while len(lines) < 3:
            line = proc.stderr.readline()  # blocks until the agent's next line
            assert line, "the agent exited"
            if not line.startswith("INFO "):  # set-up news (its keys); the rest must match
                lines.append(line)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    waits = []
    for line in lines:
        m = re.fullmatch(
            r"WARNING drift\.node: cannot enroll: coordinator http://127\.0\.0\.1:\d+ "
            r"unreachable \(.+\); retrying in (\d+) s\n",
            line,
        )
        assert m, line
        waits.append(int(m.group(1)))
    assert waits == [1, 2, 4]
    assert "Traceback" not in rest and proc.returncode == 0, rest
