"""The data plane against a real ``drift serve`` on loopback, with its secure default (CurveZMQ):
who may send frames to the collector, which frames it takes, and what a flood costs it.

The attacker and the nodes here are ZeroMQ sockets of this test: a plaintext peer, a Curve
peer with a key no node holds, and enrolled nodes (enrolled over REST with key pairs made here,
so the test can send as them). Oracles: what ``GET /spectrum`` serves, the coordinator's
Prometheus counters, and the coordinator process's resident memory (/proc).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq
from gnuradio.drift import wire

from drift.curve import KeyPair, make_client
from drift.localnet import LocalNetwork, wait_for

SCENARIO = Path(__file__).parent / "data" / "network.yaml"
SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 436e6,
    "bin_hz": 5e3,
    "interval_s": 1.0,
    "duration_s": 600.0,
}
T0 = 1_764_000_000
#: the coordinator's limits in these tests
MAX_FRAME_BINS = 65536
JOB_GRACE_S = 1.0


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("data-plane") / "net"
    with LocalNetwork(
        workdir,
        SCENARIO,
        [],
        env={
            "DRIFT_MAX_FRAME_BINS": str(MAX_FRAME_BINS),
            "DRIFT_DATA_PLANE_JOB_GRACE_S": str(JOB_GRACE_S),
        },
    ) as network:
        yield network


class Node:
    """An enrolled node this test sends as: its id, credential and Curve key pair."""

    def __init__(self, net: LocalNetwork, name: str):
        self.net = net
        self.keys = KeyPair.new()
        self.id, self.credential = net.enroll(
            name, 50.0, 8.0, max_jobs=4, curve_public_key=self.keys.public
        )
        plane = net.http.get(
            f"/nodes/{self.id}/data-plane", headers={"X-Node-Token": self.credential}
        ).json()
        assert plane["security"] == "curve" and plane["node_public_key"] == self.keys.public
        self.server_key = plane["server_public_key"]
        self.ctx = zmq.Context.instance()

    def socket(self, keys: KeyPair | None = None) -> zmq.Socket:
        """A PUSH socket connected to the collector as this node (or with other keys)."""
        sock = self.ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        make_client(sock, self.server_key, keys or self.keys)
        sock.connect(f"tcp://127.0.0.1:{self.net.collector_port}")
        return sock

    def job(self) -> str:
        """A new scan placed on this node alone (and waiting there: nobody runs it)."""
        job_id = self.net.submit({**SCAN, "node_ids": [self.id]})
        wait_for(
            lambda: self.net.job(job_id)["assignments"], 30, f"job {job_id} placed on {self.id}"
        )
        return job_id


def psd(job_id: str, node_id: str, seq: int, bins: int = 16, value: float = -150.0):
    return wire.encode(
        wire.Frame(
            wire.PSD,
            seq,
            T0 + seq,
            0.0,
            1e-3,
            {"job_id": job_id, "node_id": node_id, "center_freq_hz": 433e6, "bin_hz": 1e3},
            np.full(bins, value, np.float32),
        )
    )


def stored(net: LocalNetwork, job_id: str) -> list[dict]:
    return net.api("GET", f"/spectrum/{job_id}", params={"limit": 10000})["frames"]


def refused(net: LocalNetwork, reason: str) -> float:
    return net.metric("drift_frames_refused_total", reason=reason)


def send_while_connected(sock: zmq.Socket, messages: list[list[bytes]]) -> None:
    """Queue `messages` without blocking: a peer whose handshake was refused is dropped for
    good (ZeroMQ does not reconnect after a protocol or authentication failure), and a PUSH
    socket with no peer left would block forever."""
    for parts in messages:
        try:
            sock.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            return


def test_forged_frames_from_a_plaintext_peer_or_an_unknown_key_are_not_stored(net):
    """The issue's attack: an attacker on the network pushes frames naming a running job and
    its node before the node does. Neither a plaintext peer nor a Curve peer with a key of its
    own gets a frame in (both are counted as refused handshakes); the node's own frames,
    sequence 0 on, are stored and attributed to it (none is taken for a replay)."""
    node = Node(net, "victim")
    job_id = node.job()
    unknown0 = net.metric("drift_data_plane_handshakes_total", result="unknown_key")

    def plaintext_refusals() -> float:
        # the collector sees the mechanism mismatch (protocol), or the plaintext peer sees it
        # first and hangs up mid-handshake (no detail): either way a handshake that failed
        return net.metric(
            "drift_data_plane_connection_events_total", event="handshake_failed_protocol"
        ) + net.metric("drift_data_plane_connection_events_total", event="handshake_failed")

    refused0 = plaintext_refusals()
    plain = zmq.Context.instance().socket(zmq.PUSH)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(f"tcp://127.0.0.1:{net.collector_port}")
    stranger = node.socket(KeyPair.new())
    try:
        send_while_connected(plain, [psd(job_id, node.id, seq, value=99.0) for seq in range(5)])
        wait_for(
            lambda: plaintext_refusals() > refused0,
            30,
            "the collector to count the plaintext peer's failed handshake",
        )
        send_while_connected(stranger, [psd(job_id, node.id, seq, value=77.0) for seq in range(5)])
        wait_for(
            lambda: (
                net.metric("drift_data_plane_handshakes_total", result="unknown_key") > unknown0
            ),
            30,
            "the collector to refuse the handshake of a key no node holds",
        )
        real = node.socket()
        try:
            for seq in range(5):
                real.send_multipart(psd(job_id, node.id, seq, value=-100.0 - seq))
            frames = wait_for(
                lambda: len(stored(net, job_id)) >= 5 and stored(net, job_id),
                30,
                "the node's frames",
            )
        finally:
            real.close()
    finally:
        plain.close()
        stranger.close()
    assert [(f["seq"], f["node_id"], f["psd_db"][0]) for f in frames] == [
        (seq, node.id, -100.0 - seq) for seq in range(5)
    ]
    streams = net.api("GET", f"/spectrum/{job_id}", params={"limit": 1})
    # the stream counts come every 2 s; none may count a replay
    assert all(s["duplicates"] == 0 for s in streams["streams"])


def test_a_node_cannot_send_as_another_node_or_for_a_job_it_does_not_run(net):
    """An enrolled node's frames naming another node, a job of another node, a job that
    does not exist, or its own job once that is over (ended longer than the grace ago):
    each refused and counted by its reason; its frames for its own job are stored."""
    mallory, alice = Node(net, "mallory"), Node(net, "alice")
    own, alices = mallory.job(), alice.job()
    ended = mallory.job()
    net.api("POST", f"/jobs/{ended}/cancel")
    time.sleep(JOB_GRACE_S + 1.5)  # the grace, and what the collector read of the job
    before = {r: refused(net, r) for r in ("wrong_node", "not_assigned", "unknown_job", "job_over")}
    sock = mallory.socket()
    try:
        sock.send_multipart(psd(alices, alice.id, 0, value=1.0))  # as alice, for her job
        sock.send_multipart(psd(own, alice.id, 0, value=2.0))  # as alice, for its own job
        sock.send_multipart(psd(alices, mallory.id, 0, value=3.0))  # not its job
        sock.send_multipart(psd(str(uuid.uuid4()), mallory.id, 0, value=4.0))  # no such job
        sock.send_multipart(psd(ended, mallory.id, 0, value=5.0))  # over
        sock.send_multipart(psd(own, mallory.id, 0, value=6.0))  # its own: taken
        wait_for(lambda: stored(net, own), 30, "mallory's own frame")
        wait_for(lambda: refused(net, "job_over") > before["job_over"], 30, "the refusals counted")
    finally:
        sock.close()
    assert {r: refused(net, r) - n for r, n in before.items()} == {
        "wrong_node": 2,
        "not_assigned": 1,
        "unknown_job": 1,
        "job_over": 1,
    }
    assert [(f["node_id"], f["psd_db"][0]) for f in stored(net, own)] == [(mallory.id, 6.0)]
    assert stored(net, alices) == [] and stored(net, ended) == []


def test_a_node_enrolled_after_the_collector_started_is_taken_at_once(net):
    """The collector has read the nodes' keys (a node is sending); a node enrolled now
    connects and is stored without a restart, and its key, replaced over REST, is the only
    one taken from then on."""
    early = Node(net, "early")
    early_job = early.job()
    sock = early.socket()
    sock.send_multipart(psd(early_job, early.id, 0))
    wait_for(lambda: stored(net, early_job), 30, "the early node's frame")
    sock.close()

    late = Node(net, "late")
    late_job = late.job()
    sock = late.socket()
    try:
        sock.send_multipart(psd(late_job, late.id, 0, value=-42.0))
        frames = wait_for(lambda: stored(net, late_job), 30, "the late node's frame")
    finally:
        sock.close()
    assert [(f["node_id"], f["psd_db"][0]) for f in frames] == [(late.id, -42.0)]

    # the late node makes a new key pair: its new key is taken, its old one refused
    new = KeyPair.new()
    r = net.http.put(
        f"/nodes/{late.id}/curve-key",
        json={"curve_public_key": new.public},
        headers={"X-Node-Token": late.credential},
    )
    assert r.status_code == 200 and r.json()["node_public_key"] == new.public
    unknown_sender0 = refused(net, "unknown_sender")
    old = late.socket()
    fresh = late.socket(new)
    try:
        time.sleep(6.0)  # the collector reads every node's key again within 5 s
        old.send_multipart(psd(late_job, late.id, 1, value=-1.0))
        fresh.send_multipart(psd(late_job, late.id, 2, value=-2.0))
        frames = wait_for(
            lambda: len(stored(net, late_job)) >= 2 and stored(net, late_job),
            30,
            "the new key's frame",
        )
        time.sleep(1.0)
    finally:
        old.close()
        fresh.close()
    assert [f["psd_db"][0] for f in stored(net, late_job)] == [-42.0, -2.0]
    # another node cannot take a key that is held
    r = net.http.put(
        f"/nodes/{early.id}/curve-key",
        json={"curve_public_key": new.public},
        headers={"X-Node-Token": early.credential},
    )
    assert r.status_code == 409
    # the old key's connection was taken before the key was read again; its frame was not
    assert refused(net, "unknown_sender") - unknown_sender0 == 1


def _rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


class RssPeak:
    """The highest resident set size of a process, sampled every 10 ms while in use."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes(self.pid))
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


#: what the floods below may add to the coordinator's resident memory
FLOOD_BOUND_BYTES = 40 << 20


def test_the_coordinators_memory_stays_bounded_under_sequence_hole_and_large_frame_floods(net):
    """An enrolled node floods its own job: sequence numbers that jump by a million (and
    holes punched every other number), on each frame type, then frames of 60 MB. The
    coordinator's resident memory (sampled every 10 ms) grows by less than 40 MiB; before
    the bounds, each jump kept a million holes (about 70 MB a stream) and each 60 MB frame
    was read, decoded and stored. Frames over the limits are counted and not stored."""
    node = Node(net, "flood")
    job_id = node.job()
    pid = net.coordinator.pid
    sock = node.socket()
    sock.setsockopt(zmq.SNDHWM, 100_000)
    try:
        sock.send_multipart(psd(job_id, node.id, 0))
        wait_for(lambda: stored(net, job_id), 30, "the first frame")
        time.sleep(1.0)
        base = _rss_bytes(pid)
        too_large0, bins0 = refused(net, "too_large"), refused(net, "too_many_bins")
        lost0 = net.metric("drift_frames_lost_total")

        def handled():
            """Connections dropped, frames refused as too large, frames stored: one of them
            moves for each large frame."""
            return (
                net.metric("drift_data_plane_connection_events_total", event="disconnected"),
                refused(net, "too_large"),
                net.metric("drift_frames_stored_total", type="psd"),
            )

        with RssPeak(pid) as rss:
            frames = 0
            for ftype, payload in (
                (wire.PSD, np.zeros(4, np.float32)),
                (wire.IQ, np.zeros(4, np.complex64)),
                (wire.DETECTION, [{"event": "new"}]),
            ):
                for seq in [1, 1_000_000, 2_000_000, 3_000_000] + list(
                    range(3_000_002, 3_004_002, 2)
                ):
                    frame = wire.Frame(
                        ftype,
                        seq,
                        T0 + seq,
                        0.0,
                        0.0,
                        {"job_id": job_id, "node_id": node.id},
                        payload,
                    )
                    sock.send_multipart(wire.encode(frame))
                    frames += 1
            # each stream: 999,998 + 999,999 + 999,999 lost in the jumps, then 2,000 holes
            wait_for(
                lambda: net.metric("drift_frames_lost_total") - lost0 == 3 * 3_001_996,
                60,
                "the collector to take the hole flood",
            )
            # frames over the limits: a part of 60 MB (never read), three parts of 9 MiB in
            # all, and a PSD of more bins than the coordinator takes
            big = psd(job_id, node.id, 5_000_000, bins=15_000_000)
            for _ in range(8):
                seen = handled()
                flood = node.socket()
                flood.send_multipart(big)
                wait_for(
                    lambda seen=seen: handled() != seen, 60, "the collector to handle a 60 MB part"
                )
                flood.close()
            header, _, payload = psd(job_id, node.id, 5_000_001, bins=1_250_000)
            sock.send_multipart([header, b" " * (4 << 20), payload])  # 9 MiB in all
            sock.send_multipart(psd(job_id, node.id, 5_000_002, bins=MAX_FRAME_BINS + 1))
            wait_for(
                lambda: (
                    refused(net, "too_large") > too_large0 and refused(net, "too_many_bins") > bins0
                ),
                30,
                "the oversized frames counted",
            )
            time.sleep(0.5)
        growth = rss.peak - base
        print("RSS growth", growth, "base", base, "peak", rss.peak)
        assert growth < FLOOD_BOUND_BYTES, f"resident memory grew by {growth / 2**20:.0f} MiB"
        assert refused(net, "too_large") - too_large0 == 1  # the 60 MB parts were never read
        assert refused(net, "too_many_bins") - bins0 == 1
        # nothing over the limits was stored; the flood's small frames were
        rows = net.api("GET", f"/spectrum/{job_id}", params={"limit": 10000, "format": "json"})[
            "frames"
        ]
        assert max(len(f["psd_db"]) for f in rows) == 16
        assert max(f["seq"] for f in rows) == 3_004_000
    finally:
        sock.close()
