"""Detections in network scans.

End to end, as real processes on real sockets: a ``spectrum_scan`` of the city scenario on four
simulated nodes, whose flowgraphs detect on every stitched sweep and send detection frames to
the collector, read back with ``GET /api/v1/jobs/{id}/detections`` and its filters. Oracle: the
scenario's truth at each node's antenna (``drift.sim.render.truth_table``).

And the pieces alone: ``detections_from_store`` on the embedded store and a real InfluxDB fed with
wire-format frames, and ``merge_detections`` on hand-made detections.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from gnuradio.drift import wire

from drift.localnet import InfluxServer, LocalNetwork, wait_for
from drift.orchestrator.detections import (
    NodeDetection,
    detections_from_store,
    merge_detections,
)
from drift.orchestrator.timeseries import open_store
from drift.sim import load_scenario
from drift.sim.render import truth_table

CITY = Path(__file__).resolve().parent.parent / "examples" / "scenarios" / "city.yaml"
NODES = ["n1", "n2", "n3", "n4"]
#: the receivers with 12-bit ADCs (ADALM-Pluto, Airspy): the strongest emitter does not clip them
TWELVE_BIT = ["n1", "n4"]
#: three sweeps of 2 s: a hop dwells 1/3 s (six hops at 2.4 MS/s), longer than the 0.3 s the
#: bursty data link is off, so every sweep catches some of its bursts
SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 440e6,
    "bin_hz": 5e3,
    "interval_s": 2.0,
    "duration_s": 6.0,
}
T0 = 1_800_000_000.0


# --- merge_detections -------------------------------------------------------------------------


def det(
    node: str,
    center_mhz: float,
    bandwidth_khz: float,
    power_dbm: float = -70.0,
    snr_db: float = 20.0,
    first_s: float = 0.0,
    last_s: float = 2.0,
    units: str = "dBm",
    detection_id: int = 1,
) -> NodeDetection:
    at = dt.datetime.fromtimestamp(T0, dt.UTC)
    return NodeDetection(
        node_id=node,
        detection_id=detection_id,
        event="end",
        time=at,
        seq=0,
        center_freq_hz=center_mhz * 1e6,
        bandwidth_hz=bandwidth_khz * 1e3,
        power_dbm=power_dbm,
        peak_psd_dbm_hz=power_dbm - 40,
        snr_db=snr_db,
        noise_dbm_hz=-170.0,
        first_seen=at + dt.timedelta(seconds=first_s),
        last_seen=at + dt.timedelta(seconds=last_s),
        frames=3,
        bin_hz=5e3,
        units=units,
    )


def test_one_signal_seen_by_three_nodes_is_one_entry_with_three_sightings():
    found = [
        det("a", 433.9200, 120, -67.0, 50.0),
        det("b", 433.9195, 110, -71.5, 40.0),
        det("c", 433.9210, 125, -64.0, 55.0),
        det("a", 435.1000, 25, -60.0, 66.0),
    ]
    signals = merge_detections(found, bin_hz=5e3)
    assert [len(s.sightings) for s in signals] == [3, 1]
    telemetry, voice = signals
    assert [s.node_id for s in telemetry.sightings] == ["a", "b", "c"]
    # the signal is where its best sighting (highest SNR) puts it; its power the strongest's
    assert telemetry.center_freq_hz == 433.9210e6 and telemetry.bandwidth_hz == 125e3
    assert telemetry.max_power_dbm == -64.0
    b = telemetry.sightings[1]
    assert (b.center_freq_hz, b.bandwidth_hz, b.power_dbm, b.snr_db) == (
        433.9195e6,
        110e3,
        -71.5,
        40.0,
    )
    assert voice.sightings[0].node_id == "a" and voice.center_freq_hz == 435.1e6


def test_bands_within_one_bin_are_one_signal_and_farther_apart_are_two():
    # band edges: 100.000-100.010 MHz and, above a gap, a second 10 kHz band
    low = det("a", 100.005, 10)
    near = det("b", 100.0149 + 0.005, 10)  # 4.9 kHz gap: under one 5 kHz bin
    far = det("b", 100.0151 + 0.005, 10)  # 5.1 kHz gap
    assert len(merge_detections([low, near], bin_hz=5e3)) == 1
    assert len(merge_detections([low, far], bin_hz=5e3)) == 2
    assert len(merge_detections([low, far], bin_hz=6e3)) == 1


def test_overlap_is_transitive_and_the_result_does_not_depend_on_the_input_order():
    # a overlaps b, b overlaps c, a and c are far apart: one signal (b joins them)
    chain = [
        det("a", 200.00, 20),
        det("b", 200.02, 30),
        det("c", 200.04, 20),
        det("a", 201.00, 10),
        det("d", 199.00, 10),
        # a wide band over two narrow ones that are far apart: one signal
        det("e", 300.00, 100),
        det("f", 299.96, 4),
        det("g", 300.04, 4),
    ]
    signals = merge_detections(chain, bin_hz=1e3)
    assert [sorted(s.node_id for s in sig.sightings) for sig in signals] == [
        ["d"],
        ["a", "b", "c"],
        ["a"],
        ["e", "f", "g"],
    ]
    dumped = [s.model_dump() for s in signals]
    rng = random.Random(1)
    for _ in range(5):
        shuffled = chain[:]
        rng.shuffle(shuffled)
        assert [s.model_dump() for s in merge_detections(shuffled, bin_hz=1e3)] == dumped


def test_a_node_that_tracked_a_signal_twice_gives_one_sighting_over_both_tracks():
    bursts = [
        det("a", 437.0, 200, -70.0, 30.0, first_s=0.0, last_s=1.0, detection_id=4),
        det("a", 437.001, 190, -68.0, 35.0, first_s=5.0, last_s=6.0, detection_id=9),
        det("b", 437.0, 200, -75.0, 25.0, first_s=0.0, last_s=6.0),
    ]
    (signal,) = merge_detections(bursts, bin_hz=5e3)
    a, b = signal.sightings
    assert (a.node_id, b.node_id) == ("a", "b")
    # the stronger track's measurement, the times of both
    assert (a.center_freq_hz, a.power_dbm, a.snr_db) == (437.001e6, -68.0, 35.0)
    assert a.first_seen == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert a.last_seen == dt.datetime.fromtimestamp(T0 + 6.0, dt.UTC)


def test_uncalibrated_sightings_keep_their_dbfs_out_of_the_signals_power():
    mixed = [det("a", 300.0, 10, -20.0, 30.0, units="dBFS"), det("b", 300.0, 10, -80.0, 20.0)]
    (signal,) = merge_detections(mixed, bin_hz=5e3)
    assert signal.max_power_dbm == -80.0
    assert [s.calibrated for s in signal.sightings] == [False, True]
    (alone,) = merge_detections(mixed[:1], bin_hz=5e3)
    assert alone.max_power_dbm is None


def test_merged_signals_are_json():
    signals = merge_detections([det("a", 433.92, 120), det("b", 433.92, 120)], bin_hz=5e3)
    doc = json.loads(json.dumps([s.model_dump(mode="json") for s in signals]))
    assert doc[0]["sightings"][0]["first_seen"] == "2027-01-15T08:00:00Z"
    assert set(doc[0]) == {"center_freq_hz", "bandwidth_hz", "max_power_dbm", "sightings"}
    assert merge_detections([], bin_hz=5e3) == []


@pytest.mark.parametrize("bin_hz", [0.0, -5e3, float("nan")])
def test_merge_refuses_a_bin_width_that_is_not_positive(bin_hz):
    with pytest.raises(ValueError, match="bin_hz"):
        merge_detections([det("a", 433.92, 120)], bin_hz=bin_hz)


# --- detections_from_store ----------------------------------------------------------------------


def detection_frame(
    seq: int,
    node: str,
    event: str,
    detection_id: int,
    center_hz: float,
    first_s: float,
    last_s: float,
    frames: int = 1,
    flags: int = 0,
    job: str = "job-1",
    time_s: float = T0,
) -> wire.Frame:
    entry = {
        "event": event,
        "id": detection_id,
        "center_freq_hz": center_hz,
        "bandwidth_hz": 20e3,
        "peak_psd_db": -110.0,
        "power_db": -75.0,
        "snr_db": 30.0,
        "noise_db": -140.0,
        "first_seen_s": first_s,
        "last_seen_s": last_s,
        "frames": frames,
    }
    return wire.Frame(
        wire.DETECTION,
        seq,
        int(time_s),
        time_s % 1,
        1e-3,
        {"job_id": job, "node_id": node, "bin_hz": 5e3, "center_freq_hz": 433e6},
        [entry],
        flags,
    )


@pytest.fixture(scope="module")
def influx_server(tmp_path_factory):
    server = InfluxServer(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request, tmp_path):
    """An empty time-series store of each backend: the embedded SQLite file, and a real
    InfluxDB 1.x (Debian's influxd) through its HTTP API."""
    if request.param == "sqlite":
        opened = open_store(None, tmp_path)
    else:
        server = request.getfixturevalue("influx_server")
        opened = open_store(f"influxdb://127.0.0.1:{server.port}/{tmp_path.name}", tmp_path)
    yield opened
    opened.close()


def test_store_detections_are_one_per_track_and_node_with_its_latest_event(store):
    store.add(
        [
            detection_frame(0, "a", "new", 1, 433.92e6, T0, T0),
            detection_frame(1, "a", "new", 2, 435.10e6, T0, T0),
            detection_frame(2, "a", "end", 1, 433.921e6, T0, T0 + 2, frames=3, time_s=T0 + 2.5),
            # the same node's next run numbers its tracks from 1 again
            detection_frame(3, "a", "new", 1, 432.5e6, T0 + 60, T0 + 60, time_s=T0 + 60.5),
            detection_frame(
                0, "b", "new", 1, 433.92e6, T0 + 0.1, T0 + 0.1, flags=wire.FLAG_UNCALIBRATED
            ),
            detection_frame(0, "c", "end", 1, 433.92e6, T0, T0 + 1, job="job-2"),
        ]
    )
    found = detections_from_store(store, "job-1")
    assert [(d.node_id, d.detection_id, d.event, d.center_freq_hz) for d in found] == [
        ("a", 1, "end", 433.921e6),
        ("a", 2, "new", 435.10e6),
        ("b", 1, "new", 433.92e6),
        ("a", 1, "new", 432.5e6),
    ]
    ended = found[0]
    assert ended.frames == 3 and ended.seq == 2
    assert ended.first_seen == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert ended.last_seen == dt.datetime.fromtimestamp(T0 + 2, dt.UTC)
    assert ended.time == dt.datetime.fromtimestamp(T0 + 2.5, dt.UTC)
    assert (ended.power_dbm, ended.peak_psd_dbm_hz, ended.noise_dbm_hz, ended.snr_db) == (
        -75.0,
        -110.0,
        -140.0,
        30.0,
    )
    assert (ended.units, ended.flags, ended.bin_hz) == ("dBm", [], 5e3)
    assert (found[2].units, found[2].flags) == ("dBFS", ["uncalibrated"])
    assert [d.node_id for d in detections_from_store(store, "job-1", "b")] == ["b"]
    assert detections_from_store(store, "job-3") == []


def test_malformed_detection_entries_are_skipped(store, caplog):
    good = detection_frame(0, "a", "end", 1, 433.92e6, T0, T0 + 1)
    missing = detection_frame(1, "a", "end", 2, 435.1e6, T0 + 1, T0 + 2, time_s=T0 + 1)
    del missing.payload[0]["snr_db"]
    unknown = detection_frame(2, "a", "gone", 3, 436e6, T0 + 2, T0 + 3, time_s=T0 + 2)
    store.add([good, missing, unknown])
    assert [d.detection_id for d in detections_from_store(store, "job-1")] == [1]
    assert "malformed" in caplog.text


# --- the network ----------------------------------------------------------------------------------


def true_band_center_hz(scn, row: dict) -> float:
    """Where the emitter's power is centred as the node sees it: its frequency with the node's
    LO error, and for OFDM with an even number of subcarriers, half a subcarrier below (the
    simulator puts subcarrier k of N at f + (k - N/2) * spacing, k = 0..N-1)."""
    emitter = next(e for e in scn.emitters if e.id == row["id"])
    w = emitter.waveform
    offset_hz = -w.spacing_hz / 2 if w.type == "ofdm" and w.subcarriers % 2 == 0 else 0.0
    return row["apparent_frequency_hz"] + offset_hz


@pytest.fixture(scope="module")
def city_scan(tmp_path_factory):
    """One spectrum scan of 430-440 MHz on the city's four nodes, run to its end."""
    with LocalNetwork(tmp_path_factory.mktemp("detections") / "net", CITY, NODES) as net:
        job_id = net.submit({**SCAN, "node_count": len(NODES)})
        job = net.wait_job(job_id, timeout_s=300)
        yield net, job_id, job


def detections(net: LocalNetwork, job_id: str, **params) -> list[dict]:
    return net.api("GET", f"/jobs/{job_id}/detections", params={"limit": 10000, **params})[
        "detections"
    ]


def test_every_emitter_is_detected_at_every_12_bit_node_within_a_bin(city_scan):
    net, job_id, job = city_scan
    assert job["status"] == "completed", job
    scn = load_scenario(CITY)
    for node in TWELVE_BIT:
        uuid = net.node_uuid[node]
        found = wait_for(
            lambda u=uuid: detections(net, job_id, node_id=u), 30, f"{node}'s detections"
        )
        assert {d["node_id"] for d in found} == {uuid}
        # the scan's last sweep ends every track: each detection is complete
        assert {d["event"] for d in found} == {"end"}
        assert {d["units"] for d in found} == {"dBm"}
        for row in truth_table(scn, node):
            centre_hz = true_band_center_hz(scn, row)
            near = [d for d in found if abs(d["center_freq_hz"] - centre_hz) <= d["bin_hz"]]
            assert near, (
                f"node {node}: {row['id']} at {centre_hz / 1e6:.4f} MHz not detected; "
                f"found {[round(d['center_freq_hz'] / 1e6, 4) for d in found]}"
            )
            best = max(near, key=lambda d: d["snr_db"])
            if row["duty_cycle"] == 1:  # always on: every sweep sees it whole
                assert best["frames"] == 3, (node, row["id"], best)
                assert abs(best["power_dbm"] - row["power_dbm"]) <= 2.0, (
                    f"node {node}: {row['id']} {best['power_dbm']:.2f} dBm, "
                    f"truth {row['power_dbm']:.2f} dBm"
                )
            first = dt.datetime.fromisoformat(best["first_seen"])
            last = dt.datetime.fromisoformat(best["last_seen"])
            assert first <= last


def test_merge_of_the_scans_detections_gives_each_emitter_once_with_both_12_bit_nodes(city_scan):
    net, job_id, _ = city_scan
    scn = load_scenario(CITY)
    found = [NodeDetection.model_validate(d) for d in detections(net, job_id)]
    bin_hz = max(d.bin_hz for d in found)
    signals = merge_detections(
        [d for d in found if d.node_id in {net.node_uuid[n] for n in TWELVE_BIT}], bin_hz
    )
    for row in truth_table(scn, TWELVE_BIT[0]):
        centre_hz = true_band_center_hz(scn, row)
        (signal,) = [s for s in signals if abs(s.center_freq_hz - centre_hz) <= bin_hz]
        assert sorted(s.node_id for s in signal.sightings) == sorted(
            net.node_uuid[n] for n in TWELVE_BIT
        ), row["id"]


def test_filters_by_node_frequency_and_time(city_scan):
    net, job_id, _ = city_scan
    everything = detections(net, job_id)
    assert {d["node_id"] for d in everything} == set(net.node_uuid.values())
    for node, uuid in net.node_uuid.items():
        assert detections(net, job_id, node_id=uuid) == [
            d for d in everything if d["node_id"] == uuid
        ], node

    # frequency: a detection matches when its band overlaps the range. The telemetry emitter
    # at 433.92 MHz (about 120 kHz wide) at the first 12-bit node, at the edges of its band:
    uuid = net.node_uuid[TWELVE_BIT[0]]
    telemetry = next(
        d for d in everything if d["node_id"] == uuid and abs(d["center_freq_hz"] - 433.92e6) < 10e3
    )
    low = telemetry["center_freq_hz"] - telemetry["bandwidth_hz"] / 2
    high = telemetry["center_freq_hz"] + telemetry["bandwidth_hz"] / 2
    for lo_hz, hi_hz, matches in [
        (high - 1e3, high + 50e3, True),
        (high + 1e3, high + 50e3, False),
        (low - 50e3, low + 1e3, True),
        (low - 50e3, low - 1e3, False),
        (low + 1e3, high - 1e3, True),
    ]:
        found = detections(net, job_id, node_id=uuid, min_freq_hz=lo_hz, max_freq_hz=hi_hz)
        assert (telemetry in found) == matches, (lo_hz, hi_hz, found)
    inside = detections(net, job_id, min_freq_hz=433.90e6, max_freq_hz=433.94e6)
    assert {net.node_uuid[n] for n in TWELVE_BIT} <= {d["node_id"] for d in inside}
    assert inside == [
        d
        for d in everything
        if d["center_freq_hz"] + d["bandwidth_hz"] / 2 >= 433.90e6
        and d["center_freq_hz"] - d["bandwidth_hz"] / 2 <= 433.94e6
    ]
    assert detections(net, job_id, min_freq_hz=433.0e6) == [
        d for d in everything if d["center_freq_hz"] + d["bandwidth_hz"] / 2 >= 433.0e6
    ]

    # time: a detection matches when its first-to-last-seen span overlaps the range; the first
    # sweep of one node (each node's sweeps have their own times)
    def seen(d, key):
        return dt.datetime.fromisoformat(d[key])

    mine = [d for d in everything if d["node_id"] == uuid]
    t0 = min(seen(d, "first_seen") for d in mine)
    t1 = t0 + dt.timedelta(milliseconds=1)
    first_sweep = detections(
        net, job_id, node_id=uuid, start_time=t0.isoformat(), end_time=t1.isoformat()
    )
    assert first_sweep == [d for d in mine if seen(d, "first_seen") < t1]
    assert len(first_sweep) >= 5  # at least the five steady emitters
    later = detections(net, job_id, start_time=t1.isoformat())
    assert later == [d for d in everything if seen(d, "last_seen") >= t1]
    t_end = max(seen(d, "last_seen") for d in everything)
    assert detections(net, job_id, start_time=(t_end + dt.timedelta(seconds=1)).isoformat()) == []
    earliest = min(seen(d, "first_seen") for d in everything)
    assert detections(net, job_id, end_time=earliest.isoformat()) == []

    page = net.api("GET", f"/jobs/{job_id}/detections", params={"limit": 2})
    assert page["truncated"] is True and page["detections"] == everything[:2]


def test_bad_requests_name_the_field(city_scan):
    net, job_id, _ = city_scan
    url = f"/jobs/{job_id}/detections"
    for params, field in [
        ({"start_time": "2027-01-15T08:00:01Z", "end_time": "2027-01-15T08:00:00Z"}, "end_time"),
        ({"min_freq_hz": 434e6, "max_freq_hz": 433e6}, "max_freq_hz"),
        ({"min_freq_hz": 434e6, "max_freq_hz": 434e6}, "max_freq_hz"),
        ({"min_freq_hz": -1}, "min_freq_hz"),
        ({"max_freq_hz": 0}, "max_freq_hz"),
        ({"node_id": "not-a-node"}, "node_id"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"limit": 0}, "limit"),
        ({"limit": 10001}, "limit"),
    ]:
        r = net.http.get(url, params=params, headers=net._headers)
        assert r.status_code == 422, (params, r.text)
        assert [e["loc"] for e in r.json()["detail"]] == [["query", field]], (params, r.text)
    unknown = "00000000-0000-4000-8000-000000000000"
    r = net.http.get(f"/jobs/{unknown}/detections", headers=net._headers)
    assert r.status_code == 404 and unknown in r.json()["detail"]
    assert net.http.get(url).status_code == 401
    # a viewer may read them
    net.api(
        "POST",
        "/users",
        json={"username": "watcher", "password": "a-long-enough-password", "role": "viewer"},
    )
    token = net.http.post(
        "/auth/token", data={"username": "watcher", "password": "a-long-enough-password"}
    )
    viewer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    r = net.http.get(url, headers=viewer)
    assert r.status_code == 200 and r.json()["detections"]
