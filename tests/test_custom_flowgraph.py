"""custom_flowgraph jobs end to end: a .grc uploaded over REST, approved by an admin, run by a
node agent (real processes); and everything a client can get wrong, refused with a 422 naming
the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drift.localnet import LocalNetwork, NetworkError

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).parent / "data" / "network.yaml"
# an ordinary IQ capture under another name: any GRC user's flowgraph
CAPTURE = (
    (ROOT / "flowgraphs" / "iq_capture.grc")
    .read_text()
    .replace("id: iq_capture", "id: my_capture")
    .replace("title: DRIFT IQ capture", "title: My capture")
)


def _job(template_id, **parameters):
    return {
        "type": "custom_flowgraph",
        "template_id": template_id,
        "parameters": parameters,
        "start_freq_hz": 431e6,
        "stop_freq_hz": 433e6,
        "duration_s": 5,
        "node_count": 1,
    }


def _status(net, method, path, **kw):
    return net.http.request(method, path, headers=net._headers, **kw)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    fast_retries = {"DRIFT_RETRY_BACKOFF_INITIAL_S": "0.2", "DRIFT_RETRY_BACKOFF_MAX_S": "0.5"}
    with LocalNetwork(
        tmp_path_factory.mktemp("custom") / "net", SCENARIO, ["a"], env=fast_retries
    ) as net:
        yield net


def test_uploaded_template_runs_on_a_node_once_approved(net):
    up = net.api("POST", "/flowgraphs", json={"name": "my capture", "content": CAPTURE})
    names = {p["name"]: p for p in up["parameters"]}
    assert {"center_freq_hz", "samp_rate_hz", "n_samples", "frames_to"} <= set(names)
    assert names["n_samples"]["type"] == "intx" and up["approved_at"] is None
    # the same content again is the same template
    again = _status(net, "POST", "/flowgraphs", json={"name": "again", "content": CAPTURE})
    assert again.status_code == 200 and again.json()["id"] == up["id"]
    job = _job(up["id"], center_freq_hz=431.92e6, samp_rate_hz=1e6, n_samples=150000)
    r = _status(net, "POST", "/jobs", json=job)
    assert r.status_code == 422 and "approved" in r.text and "template_id" in r.text
    net.api("POST", f"/flowgraphs/{up['id']}/approve")
    job_id = net.submit(job)
    done = net.wait_job(job_id, timeout_s=120)
    assert done["status"] == "completed", done
    aid = done["assignments"][0]["id"]
    iq = np.fromfile(net.workdir / "node-a" / "jobs" / aid / "iq_capture.cf32", np.complex64)
    assert len(iq) == 150000
    # the node's health arrived with its heartbeats
    node = net.api("GET", f"/nodes/{net.node_uuid['a']}")
    assert {"cpu_percent", "running_jobs", "spooled_frames", "reported_at"} <= set(node["health"])


def test_a_failing_flowgraph_reports_its_own_error_text(net):
    up = net.api("POST", "/flowgraphs", json={"name": "cap", "content": CAPTURE})
    net.api("POST", f"/flowgraphs/{up['id']}/approve")
    # a centre frequency below the Pluto's 325 MHz tuning range: the device refuses it
    job_id = net.submit(_job(up["id"], center_freq_hz=100e6, samp_rate_hz=1e6, n_samples=1000))
    done = net.wait_job(job_id, timeout_s=120)
    assert done["status"] == "failed"
    err = " ".join(a["last_error"] or "" for a in done["assignments"])
    assert "flowgraph failed" in err and "outside its tuning range" in err, err
    # it was tried as often as the coordinator allows, each time as a new attempt
    assert done["assignments"][0]["attempts"] == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("blocks: [", "YAML"),
        (
            CAPTURE.replace("id: blocks_file_sink", "id: blocks_no_such_block"),
            "blocks_no_such_block",
        ),
        (CAPTURE.replace("generate_options: no_gui", "generate_options: qt_gui"), "no_gui"),
    ],
)
def test_bad_uploads_are_refused_naming_the_problem(net, content, message):
    r = _status(net, "POST", "/flowgraphs", json={"name": "bad", "content": content})
    assert r.status_code == 422, r.text
    assert message in r.text and "content" in r.text


def test_job_parameters_are_checked_against_the_template(net):
    up = net.api("POST", "/flowgraphs", json={"name": "cap", "content": CAPTURE})
    net.api("POST", f"/flowgraphs/{up['id']}/approve")
    for params, field, message in [
        ({"no_such": 1}, "no_such", "has no parameter"),
        ({"n_samples": "lots"}, "n_samples", "not a valid intx"),
        ({"device_args": "driver=x"}, "device_args", "set by the node"),
    ]:
        r = _status(net, "POST", "/jobs", json=_job(up["id"], **params))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "parameters", field]
        assert message in r.text
    r = _status(net, "POST", "/jobs", json=_job("00000000-0000-0000-0000-000000000000"))
    assert r.status_code == 422 and "no flowgraph template" in r.text


def test_only_admins_approve_and_nodes_only_fetch_what_they_run(net):
    up = net.api("POST", "/flowgraphs", json={"name": "cap", "content": CAPTURE})
    assert net.http.post(f"/flowgraphs/{up['id']}/approve").status_code == 401
    node = net.node_uuid["a"]
    r = net.http.get(f"/nodes/{node}/flowgraphs/{up['id']}", headers={"X-Node-Token": "nope"})
    assert r.status_code == 401
    with pytest.raises(NetworkError, match="404"):
        net.api("GET", "/flowgraphs/00000000-0000-0000-0000-000000000000")
