"""The node channel over a real ``drift serve``: heartbeats acknowledged once stored,
assignments pushed when they change, first delivery once across channel and HTTP, refusals
with their close codes, bad messages answered with the field and nothing lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from drift.localnet import LocalNetwork
from drift.node.channel import ChannelClient, ChannelError
from drift.protocol import CLOSE_FORBIDDEN, CLOSE_REPLACED, CLOSE_UNAUTHORIZED, channel_url

SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "city.yaml"
SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 431e6,
    "bin_hz": 10e3,
    "duration_s": 3600,
}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    # a scheduler interval far longer than the tests: only a submission's own wake-up and
    # the channel's push can make an assignment arrive in time
    env = {
        "DRIFT_SCHEDULER_INTERVAL_S": "60",
        "DRIFT_DISPATCH_POLL_S": "30",
        "DRIFT_ARGON2_TIME_COST": "1",
        "DRIFT_ARGON2_MEMORY_KIB": "64",
    }
    with LocalNetwork(tmp_path_factory.mktemp("channel"), SCENARIO, [], env=env) as n:
        yield n


def _open(net, node_id, credential):
    return connect(
        channel_url(net.base, node_id),
        additional_headers={"X-Node-Token": credential},
        open_timeout=10,
    )


def _next(ws, kind, timeout_s=10.0):
    """The next message of this type (others are skipped), within a bounded time."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg["type"] == kind:
            return msg


def test_heartbeat_is_stored_before_its_ack(net):
    node_id, cred = net.enroll("hb", 48.1, 11.5)
    with _open(net, node_id, cred) as ws:
        assert _next(ws, "assignments")["assignments"] == []  # on connect
        health = {"cpu_percent": 12.5, "running_jobs": 0, "spooled_frames": 7}
        ws.send(
            json.dumps(
                {
                    "type": "heartbeat",
                    "seq": 41,
                    "health": health,
                    "sync": {"source": "ptp", "uncertainty_s": 2e-6},
                }
            )
        )
        ack = _next(ws, "ack")
        assert ack["seq"] == 41 and ack["status"] == "online"
        node = net.api("GET", f"/nodes/{node_id}")
        assert node["health"]["spooled_frames"] == 7
        assert node["health"]["reported_at"] == ack["server_time"]
        assert node["sync_source"] == "ptp" and node["sync_uncertainty_s"] == 2e-6


def test_assignments_are_pushed_when_placed_and_when_cancelled(net):
    node_id, cred = net.enroll("push", 10.0, 10.0)
    with _open(net, node_id, cred) as ws:
        assert _next(ws, "assignments")["assignments"] == []
        job_id = net.submit({**SCAN, "node_ids": [node_id]})
        t0 = time.monotonic()
        pushed = _next(ws, "assignments", timeout_s=10)["assignments"]
        # the scheduler's own interval is 60 s and the channel's poll 30 s: this came from
        # the submission waking the scheduler and the placement waking the channel
        assert time.monotonic() - t0 < 10
        assert [(a["job_id"], a["first_delivery"]) for a in pushed] == [(job_id, True)]
        assert pushed[0]["parameters"]["start_freq_hz"] == 430e6
        # the same attempt read over HTTP is a repeat: first delivery happened once
        polled = net.http.get(
            f"/nodes/{node_id}/assignments", headers={"X-Node-Token": cred}
        ).json()
        assert [(a["id"], a["first_delivery"]) for a in polled] == [(pushed[0]["id"], False)]
        net.api("POST", f"/jobs/{job_id}/cancel")
        assert _next(ws, "assignments")["assignments"] == []


def test_bad_messages_name_the_field_and_change_nothing(net):
    node_id, cred = net.enroll("bad", 20.0, 20.0)
    before = net.api("GET", f"/nodes/{node_id}")["last_seen"]
    with _open(net, node_id, cred) as ws:
        ws.send(
            json.dumps(
                {"type": "heartbeat", "seq": 5, "health": {"cpu_percent": 250, "running_jobs": 0}}
            )
        )
        err = _next(ws, "error")
        assert err["seq"] == 5
        assert ["health", "cpu_percent"] in [d["loc"] for d in err["detail"]]
        ws.send("{not json")
        assert _next(ws, "error")["detail"][0]["msg"]
        ws.send(json.dumps({"type": "heartbeat", "seq": 6, "color": "red"}))
        assert ["color"] in [d["loc"] for d in _next(ws, "error")["detail"]]
        assert net.api("GET", f"/nodes/{node_id}")["last_seen"] == before
        # the channel is still open and a good heartbeat is taken
        ws.send(json.dumps({"type": "heartbeat", "seq": 7}))
        assert _next(ws, "ack")["seq"] == 7
    assert net.api("GET", f"/nodes/{node_id}")["last_seen"] > before


def _close_code(net, node_id, credential) -> int:
    with _open(net, node_id, credential) as ws, pytest.raises(ConnectionClosed) as e:
        for _ in range(10):
            ws.recv(timeout=10)
    return e.value.rcvd.code


def test_refusals_carry_their_close_codes(net):
    a_id, a_cred = net.enroll("a", 30.0, 30.0)
    b_id, _ = net.enroll("b", 31.0, 30.0)
    assert _close_code(net, a_id, "drift-node-not-a-credential") == CLOSE_UNAUTHORIZED
    assert _close_code(net, b_id, a_cred) == CLOSE_FORBIDDEN  # a node acts only as itself
    with _open(net, a_id, a_cred) as first:
        _next(first, "assignments")
        with _open(net, a_id, a_cred) as second:
            _next(second, "assignments")
            with pytest.raises(ConnectionClosed) as e:
                _next(first, "never")
            assert e.value.rcvd.code == CLOSE_REPLACED
            second.send(json.dumps({"type": "heartbeat", "seq": 1}))
            assert _next(second, "ack")["seq"] == 1


def test_agent_client_heartbeats_and_hears_pushes(net):
    node_id, cred = net.enroll("client", 40.0, 40.0)
    pushed = []
    client = ChannelClient(channel_url(net.base, node_id), cred, pushed.append, timeout_s=10)
    client.connect()
    try:
        ack = client.heartbeat({"health": {"cpu_percent": 1.0, "running_jobs": 0}})
        assert ack["type"] == "ack" and ack["seq"] == 1
        with pytest.raises(ChannelError, match="cpu_percent"):
            client.heartbeat({"health": {"cpu_percent": -1, "running_jobs": 0}})
        assert client.open  # a refused message does not close the channel
        job_id = net.submit({**SCAN, "node_ids": [node_id]})
        deadline = time.monotonic() + 10
        while not any(lst for lst in pushed) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [a["job_id"] for a in pushed[-1]] == [job_id]
    finally:
        client.close()
    assert not client.open
    refused = ChannelClient(channel_url(net.base, node_id), "wrong", pushed.append)
    refused.connect()  # the handshake is accepted, then closed with the reason
    try:
        with pytest.raises(ChannelError, match=str(CLOSE_UNAUTHORIZED)):
            refused.heartbeat({})
    finally:
        refused.close()


def test_changes_name_what_changed_until_taken():
    import asyncio
    import threading

    from drift.orchestrator.events import Changes

    async def run():
        changes = Changes()
        sub = changes.subscribe()
        assert sub.take() == set() and not sub.event.is_set()
        # from another thread, as the scheduler's tick does
        t = threading.Thread(target=lambda: (changes.wake({"a"}), changes.wake(["b"])))
        t.start()
        t.join()
        await asyncio.wait_for(sub.event.wait(), 5)
        assert sub.take() == {"a", "b"} and not sub.event.is_set()
        changes.wake({"c"})
        changes.wake()  # anything may have changed
        changes.wake({"d"})
        await asyncio.wait_for(sub.event.wait(), 5)
        assert sub.take() is None
        changes.unsubscribe(sub)
        changes.wake({"e"})
        await asyncio.sleep(0.01)
        assert sub.take() == set()

    asyncio.run(run())
