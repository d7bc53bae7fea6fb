"""Propagation tests through the whole network, as real processes: ``drift serve`` and one
``drift node`` per simulated node; REST ``propagation_test`` jobs; the transmitter runs
``flowgraphs/propagation_tx.grc`` (its DRIFT Device Sink puts it on the scenario's shared
air), the receivers capture the band from the common start in compiled flowgraphs, and the
coordinator's analysis gives each receiver's path loss and a log-distance fit.

Oracles: the free-space (Friis) loss computed here from the nodes' scenario positions, the
scenario's own log-distance exponent, the node's node.yaml, and the shared air's record of
what was really transmitted (written by the transmitting process, read here).
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import geojson
import numpy as np
import pymap3d
import pytest
import yaml

from drift.localnet import LocalNetwork, wait_for
from drift.sim import load_scenario
from drift.sim.air import air_dir
from drift.sim.air import read as read_air
from drift.sim.scenario import Emitter
from drift.sim.synth import path_loss_db

C = 299_792_458.0
FREQ_HZ = 435e6
TX_BAND = {"low_hz": 430e6, "high_hz": 440e6, "max_power_dbm": 10.0}
TRANSMIT = {"enabled": True, "licence": "DL0SIM", "bands": [TX_BAND]}
RECEIVERS = ["r1", "r2", "r3", "r4"]
#: the flowgraphs of a job start well ahead of the capture on this (shared, slow) machine
NODE_OPTIONS = {"capture_prestart_s": 15.0}
ENV = {"DRIFT_CAPTURE_LEAD_S": "22"}

#: receivers at about 0.6, 1.2, 2.5 and 5 km in four directions from the transmitter
OFFSETS_M = {"r1": (600, 0), "r2": (0, 1200), "r3": (-2500, 0), "r4": (0, -5000)}
ORIGIN = (48.15, 11.55, 520.0)


def scenario(path: Path, propagation: dict, scale: float = 1.0) -> Path:
    nodes = [
        {
            "id": "tx",
            "position": dict(zip(("lat", "lon", "alt"), ORIGIN, strict=True)),
            "device": "hackrf_one",
            "antenna_gain_dbi": 3.0,
            "clock": {"source": "gps", "uncertainty_s": 50e-9},
        },
        # can transmit, has not opted in; 134 m from the transmitter, too close for its
        # default gain (its ADC clips)
        {
            "id": "quiet",
            "position": {"lat": 48.151, "lon": 11.551, "alt": 520},
            "device": "hackrf_one",
            "clock": {"source": "gps", "uncertainty_s": 50e-9},
        },
    ]
    for name, (e, n) in OFFSETS_M.items():
        lat, lon, alt = pymap3d.enu2geodetic(e * scale, n * scale, 0.0, *ORIGIN)
        nodes.append(
            {
                "id": name,
                "position": {"lat": float(lat), "lon": float(lon), "alt": float(alt)},
                "device": "adalm_pluto",
                "antenna_gain_dbi": {"r1": 0.0, "r2": 2.0, "r3": -1.0, "r4": 5.0}[name],
                "clock": {"source": "gps", "uncertainty_s": 50e-9},
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"seed": 11, "propagation": propagation, "emitters": [], "nodes": nodes})
    )
    return path


def friis_db(a, b, freq_hz: float = FREQ_HZ) -> float:
    """Free-space loss between two scenario positions (straight line through ECEF)."""
    pa = np.array(pymap3d.geodetic2ecef(a.lat, a.lon, a.alt))
    pb = np.array(pymap3d.geodetic2ecef(b.lat, b.lon, b.alt))
    return 20 * math.log10(4 * math.pi * float(np.linalg.norm(pa - pb)) * freq_hz / C)


def transmitter_user(net: LocalNetwork) -> dict[str, str]:
    """An operator with the transmit permission (the admin has no such permission)."""
    net.api(
        "POST",
        "/users",
        json={
            "username": "sounder",
            "password": "a-long-test-password",
            "role": "operator",
            "permissions": ["transmit"],
        },
    )
    r = net.http.post(
        "/auth/token", data={"username": "sounder", "password": "a-long-test-password"}
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def submit(net: LocalNetwork, headers: dict[str, str], **job) -> str:
    body = {
        "type": "propagation_test",
        "freq_hz": FREQ_HZ,
        "bandwidth_hz": 100e3,
        "tx_power_dbm": 5.0,
        "duration_s": 2.0,
        "receiver_count": 4,
        **job,
    }
    r = net.http.post("/jobs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def network(
    tmp_path_factory,
    name: str,
    propagation: dict,
    nodes=("tx", "quiet", *RECEIVERS),
    scale: float = 1.0,
    **kw,
) -> LocalNetwork:
    root = tmp_path_factory.mktemp(name)
    scn = scenario(root / "scenario.yaml", propagation, scale)
    return LocalNetwork(
        root / "net",
        scn,
        list(nodes),
        env=ENV,
        node_options=NODE_OPTIONS,
        per_node_options={"tx": {"transmit": TRANSMIT}, **kw.pop("per_node", {})},
        **kw,
    )


@pytest.fixture(scope="module")
def free_space(tmp_path_factory):
    with network(tmp_path_factory, "free", {"model": "free_space"}) as net:
        net.headers_tx = transmitter_user(net)
        yield net


def test_free_space_path_losses_match_friis_within_a_db(free_space):
    """Five receivers: four within 1 dB of Friis, and one so close that its ADC clips, said
    so and left out of the fit (not a wrong loss)."""
    net = free_space
    job_id = submit(net, net.headers_tx, receiver_count=5)
    done = net.wait_job(job_id, 240)
    assert done["status"] == "completed", done
    roles = {a["node_id"]: a["role"] for a in done["assignments"]}
    by_name = {v: k for k, v in net.node_uuid.items()}
    named = {by_name[n]: r for n, r in roles.items()}
    # "quiet" can transmit but did not opt in: never the transmitter (it may receive)
    assert [n for n, r in named.items() if r == "transmitter"] == ["tx"], named
    assert len(named) == 6
    res = net.api("GET", f"/jobs/{job_id}/result")
    assert res["kind"] == "propagation" and res["usable"], res
    scn = load_scenario(net.scenario)
    tx = scn.node("tx")
    assert res["eirp_dbm"] == pytest.approx(5.0 + 3.0)  # the power and the antenna's 3 dBi
    assert len(res["links"]) == 5
    [close] = [link for link in res["links"] if link["name"] == "quiet"]
    assert close["note"].startswith("clipped") and close["path_loss_db"] is None, close
    assert res["fit"]["receivers"] == 4
    for link in res["links"]:
        if link["name"] == "quiet":
            continue
        node = scn.node(link["name"])
        truth = friis_db(tx.position, node.position)
        print(
            f"{link['name']}: {link['distance_m']:.0f} m, loss {link['path_loss_db']:.2f} dB, Friis {truth:.2f} dB"
        )
        assert link["path_loss_db"] == pytest.approx(truth, abs=1.0), (link, truth)
        pa = pymap3d.geodetic2ecef(tx.position.lat, tx.position.lon, tx.position.alt)
        pb = pymap3d.geodetic2ecef(node.position.lat, node.position.lon, node.position.alt)
        assert link["distance_m"] == pytest.approx(math.dist(pa, pb), rel=1e-6)
        assert link["snr_db"] > 10
    assert res["fit"]["exponent"] == pytest.approx(2.0, abs=0.1), res["fit"]
    # the transmission, as the node reported it: band, power, licence and times
    tx_assignment = next(a for a in done["assignments"] if a["role"] == "transmitter")
    sent = tx_assignment["transmission"]
    assert sent["power_dbm"] == 5.0 and sent["center_hz"] == FREQ_HZ
    assert sent["licence"] == "DL0SIM"
    assert sent["stopped_by"] in ("flowgraph", "watchdog")  # its own end, or at the job's
    log = (net.workdir / "node-tx" / "transmissions.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in log][-2:] == ["start", "end"]
    # GeoJSON: the links as LineStrings from the transmitter, with their loss
    r = net.http.get(f"/jobs/{job_id}/result", params={"format": "geojson"}, headers=net._headers)
    assert r.status_code == 200, r.text
    assert geojson.loads(r.text).is_valid
    links = [f for f in r.json()["features"] if f["properties"]["role"] == "link"]
    assert len(links) == 5
    for f in links:
        if f["properties"]["name"] == "quiet":
            assert f["properties"]["path_loss_db"] is None
            continue
        (lon0, lat0, _), (lon1, lat1, _) = f["geometry"]["coordinates"]
        assert (lat0, lon0) == pytest.approx((tx.position.lat, tx.position.lon))
        node = scn.node(f["properties"]["name"])
        assert (lat1, lon1) == pytest.approx((node.position.lat, node.position.lon))
        assert f["properties"]["path_loss_db"] == pytest.approx(
            friis_db(tx.position, node.position), abs=1.0
        )


def test_transmitting_needs_the_permission(free_space):
    net = free_space
    body = {"type": "propagation_test", "freq_hz": FREQ_HZ, "tx_power_dbm": 0, "duration_s": 2}
    r = net.http.post("/jobs", json=body, headers=net._headers)  # the admin: no permission
    assert r.status_code == 403 and "transmit" in r.text, r.text


@pytest.mark.parametrize(
    ("job", "why"),
    [
        ({"tx_power_dbm": 10.5}, "over their power"),  # in the band, over its 10 dBm
        ({"freq_hz": 445e6, "tx_power_dbm": 0.0}, "outside their bands"),  # the device tunes there
        ({"tx_node_id": "quiet", "tx_power_dbm": 0.0}, "have not opted in"),
    ],
)
def test_a_transmission_the_licence_does_not_allow_stays_pending_with_the_reason(
    free_space, job, why
):
    net = free_space
    if "tx_node_id" in job:
        job = {**job, "tx_node_id": net.node_uuid[job["tx_node_id"]]}
    job_id = submit(net, net.headers_tx, **job)

    def reason():
        j = net.job(job_id)
        assert j["status"] == "pending", j
        return j["pending_reason"] if why in (j["pending_reason"] or "") else None

    text = wait_for(reason, 30, f"the job to say {why!r}")
    assert "needs 1 node to transmit" in text
    net.api("POST", f"/jobs/{job_id}/cancel")


def test_an_uploaded_transmitting_flowgraph_on_a_node_that_did_not_opt_in_is_refused(
    free_space,
):
    """The coordinator places a transmitting custom flowgraph like a scan, on any node (here
    the one asked for, "quiet": it can transmit, its node.yaml has no transmit section). The
    node refuses it and says why, and nothing goes on the air."""
    net = free_space
    content = (
        (Path(__file__).resolve().parent.parent / "flowgraphs" / "propagation_tx.grc")
        .read_text()
        .replace("id: propagation_tx", "id: uploaded_tx")
    )
    up = net.api("POST", "/flowgraphs", json={"name": "uploaded_tx", "content": content})
    assert up["transmit_blocks"] == ["drift_device_sink_0"], up
    net.api("POST", f"/flowgraphs/{up['id']}/approve")
    before = len(read_air(air_dir(net.scenario)))
    body = {
        "type": "custom_flowgraph",
        "template_id": up["id"],
        "parameters": {
            "center_freq_hz": FREQ_HZ,
            "samp_rate_hz": 125e3,
            "n_samples": 125000,
            "tx_power_dbm": 0.0,
        },
        "start_freq_hz": FREQ_HZ - 50e3,
        "stop_freq_hz": FREQ_HZ + 50e3,
        "duration_s": 1,
        "node_ids": [net.node_uuid["quiet"]],
    }
    assert net.http.post("/jobs", json=body, headers=net._headers).status_code == 403
    r = net.http.post("/jobs", json=body, headers=net.headers_tx)
    assert r.status_code == 201, r.text
    done = net.wait_job(r.json()["id"], 120)
    assert done["status"] == "failed", done
    errors = [a["last_error"] or "" for a in done["assignments"]]
    assert any("refused: transmitting is not enabled" in e for e in errors), errors
    assert len(read_air(air_dir(net.scenario))) == before
    for a in done["assignments"]:
        assert not (net.workdir / "node-quiet" / "jobs" / a["id"] / "command.json").exists()


@pytest.fixture(scope="module")
def log_distance(tmp_path_factory):
    # receivers at 0.3 to 2.5 km: every one well above the noise in a 25 kHz band
    prop = {"model": "log_distance", "exponent": 2.7, "shadowing_sigma_db": 2.0}
    with network(tmp_path_factory, "logd", prop, scale=0.5) as net:
        net.headers_tx = transmitter_user(net)
        yield net


def test_the_fitted_exponent_is_the_scenarios(log_distance):
    net = log_distance
    job_id = submit(net, net.headers_tx, waveform="pn", receiver_count=5, bandwidth_hz=25e3)
    done = net.wait_job(job_id, 240)
    assert done["status"] == "completed", done
    res = net.api("GET", f"/jobs/{job_id}/result")
    assert res["usable"] and res["waveform"] == "pn", res
    print("log-distance fit:", res["fit"])
    assert res["fit"]["exponent"] == pytest.approx(2.7, abs=0.3), res["fit"]
    # each link against the scenario's own loss for it (its seeded shadowing included): the
    # simulator keys a transmitting node's links as the emitter "node:<id>"
    scn = load_scenario(net.scenario)
    tx = scn.node("tx")
    em = Emitter(
        id="node:tx",
        position=tx.position,
        frequency_hz=FREQ_HZ,
        eirp_dbm=res["eirp_dbm"],
        waveform={"type": "cw"},
    )
    for link in res["links"]:
        if link["path_loss_db"] is None:
            continue
        node = scn.node(link["name"])
        truth = path_loss_db(scn, em, node, link["distance_m"])
        print(
            f"{link['name']}: loss {link['path_loss_db']:.2f} dB, scenario {truth:.2f} dB, snr {link['snr_db']:.1f} dB, rx {link['received_power_dbm']:.1f} dBm, noise {link['noise_power_dbm']:.1f} dBm"
        )
        assert link["path_loss_db"] == pytest.approx(truth, abs=1.0), (link, truth)
    # every path loses more than free space would (an exponent above 2 beyond 1 m)
    measured = [link for link in res["links"] if link["path_loss_db"] is not None]
    assert res["fit"]["receivers"] == len(measured) >= 4, res["links"]
    assert all(link["excess_loss_db"] > 5 for link in measured), measured


@pytest.fixture
def refusing(tmp_path_factory):
    """A transmitter whose node.yaml was narrowed after it enrolled: the coordinator still
    holds its old claim (430-440 MHz), the node allows 432-434 MHz only."""
    net = network(tmp_path_factory, "refuse", {"model": "free_space"}, nodes=("tx", "r1"))
    with net:
        net.headers_tx = transmitter_user(net)
        net.kill_node("tx", signal.SIGTERM)
        node_id = net.node_uuid["tx"]
        wait_for(
            lambda: net.api("GET", f"/nodes/{node_id}")["status"] != "online",
            60,
            "the coordinator to see the node gone",
            0.5,
        )
        cfg = yaml.safe_load(net.node_config("tx").read_text())
        cfg["transmit"]["bands"] = [{"low_hz": 432e6, "high_hz": 434e6, "max_power_dbm": 10}]
        net.node_config("tx").write_text(yaml.safe_dump(cfg))
        net.start_node("tx")
        net.wait_nodes_online()
        yield net


def test_a_node_asked_to_transmit_outside_its_own_settings_refuses_and_says_why(refusing):
    net = refusing
    # 435 MHz: in the old claim, not in node.yaml now
    job_id = submit(net, net.headers_tx, receiver_count=1)
    done = net.wait_job(job_id, 240)
    tx = next(a for a in done["assignments"] if a["role"] == "transmitter")
    assert tx["state"] == "failed", done
    assert (
        "refused" in tx["last_error"] and "outside this node's licensed bands" in (tx["last_error"])
    ), tx
    assert done["status"] == "failed"
    # nothing went on the air
    assert read_air(air_dir(net.scenario)) == []
    assert "refused" in net.log_text("node-tx")


@pytest.fixture
def hanging(tmp_path_factory):
    """A transmitter whose flowgraph hangs once on the air (device option tx_hang=1)."""
    net = network(
        tmp_path_factory,
        "hang",
        {"model": "free_space"},
        nodes=("tx", "r1"),
        node_device_options={"tx": ",tx_hang=1"},
    )
    with net:
        net.headers_tx = transmitter_user(net)
        yield net


def test_the_watchdog_ends_the_transmission_at_the_jobs_end_without_the_coordinator(hanging):
    net = hanging
    duration = 4.0
    job_id = submit(net, net.headers_tx, duration_s=duration, receiver_count=1)
    air = air_dir(net.scenario)
    on_air = wait_for(lambda: read_air(air) or None, 90, "the transmitter to go on the air")
    [tx] = on_air
    # the coordinator dies mid-transmission
    wait_for(lambda: time.time() > tx.start + 1.0 or None, 30, "the transmission to run")
    net.stop_coordinator(signal.SIGKILL)
    planned_end = tx.start + duration
    assert time.time() < planned_end
    # the node stops it itself: off the air shortly after the job's end
    wait_for(
        lambda: read_air(air)[0].end(time.time()) is not None or None,
        planned_end - time.time() + 15,
        "the transmission to end",
    )
    [after] = read_air(air)
    ended = after.end(time.time())
    assert planned_end <= ended <= planned_end + 4.0, ended - planned_end

    def logged_end():
        path = net.workdir / "node-tx" / "transmissions.jsonl"
        log = [json.loads(line) for line in path.read_text().splitlines()]
        return log if log[-1]["event"] == "end" else None

    log = wait_for(logged_end, 10, "the node to log the transmission's end")
    assert log[-1]["stopped_by"].startswith("watchdog"), log
    assert log[-1]["ended"] <= planned_end + 4.0
    assert net.coordinator.poll() is not None  # it stayed dead throughout
    # back: the node reports what it transmitted, and that the watchdog ended it
    net.start_coordinator()

    def reported():
        tx = next(a for a in net.job(job_id)["assignments"] if a["role"] == "transmitter")
        return tx["transmission"]

    sent = wait_for(reported, 60, "the transmitter's report")
    assert sent["stopped_by"].startswith("watchdog"), sent
    assert sent["power_dbm"] == 5.0 and sent["licence"] == "DL0SIM"
