"""The wire format: round trips, frame_sink over real ZeroMQ sockets, and hostile frames."""

import random

import numpy as np
import pmt
import pytest
import zmq
from gnuradio import blocks, gr
from gnuradio.drift import wire
from gnuradio.drift.frame_sink import frame_sink


def test_round_trip_of_every_frame_type():
    rng = np.random.default_rng(0)
    frames = [
        wire.Frame(
            wire.PSD,
            7,
            1_764_000_000,
            0.123456789,
            2e-8,
            {"job_id": "j", "node_id": "n1", "n_bins": 64},
            rng.standard_normal(64).astype(np.float32),
            wire.FLAG_OVERFLOW,
        ),
        wire.Frame(
            wire.IQ,
            0,
            1_764_000_001,
            0.5,
            1e-3,
            {"job_id": "j"},
            (rng.standard_normal(32) + 1j * rng.standard_normal(32)).astype(np.complex64),
        ),
        wire.Frame(wire.DETECTION, 3, 5, 0.0, 0.0, {}, [{"center_freq_hz": 1e8, "event": "new"}]),
    ]
    for f in frames:
        parts = wire.encode(f)
        assert len(parts[0]) == 48 and parts[0][:4] == b"DRFT"
        g = wire.decode(parts)
        assert (g.frame_type, g.seq, g.time_s, g.time_frac, g.time_uncertainty_s, g.flags) == (
            f.frame_type,
            f.seq,
            f.time_s,
            f.time_frac,
            f.time_uncertainty_s,
            f.flags,
        )
        assert g.meta == f.meta
        if f.frame_type == wire.DETECTION:
            assert g.payload == f.payload
        else:
            np.testing.assert_array_equal(g.payload, f.payload)
    assert wire.decode(wire.encode(frames[0])).flag_names == ["overflow"]


def test_frame_sink_publishes_psd_rows_over_zeromq():
    ctx = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    rows = np.arange(5 * 16, dtype=np.float32).reshape(5, 16) - 150
    tags = []
    for offset, key, value in [
        (0, "rx_time", pmt.make_tuple(pmt.from_uint64(1_764_000_000), pmt.from_double(0.25))),
        (0, "rx_freq", pmt.from_double(433e6)),
        (3, "rx_time", pmt.make_tuple(pmt.from_uint64(1_764_000_001), pmt.from_double(0.75))),
    ]:
        t = gr.tag_t()
        t.offset, t.key, t.value = offset, pmt.intern(key), value
        tags.append(t)
    tb = gr.top_block(catch_exceptions=False)
    src = blocks.vector_source_f(rows.ravel().tolist(), False, 16, tags)
    sink = frame_sink(
        f"tcp://127.0.0.1:{port}",
        "job-1",
        "n1",
        16,
        1e6,
        10,
        time_uncertainty_s=2e-8,
        bind=False,
        socket_type="push",
    )
    tb.connect(src, sink)
    tb.run()
    frames = []
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    while len(frames) < 5 and poller.poll(5000):
        frames.append(wire.decode(pull.recv_multipart()))
    pull.close()
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    for f, row in zip(frames, rows, strict=True):
        np.testing.assert_array_equal(f.payload, row)
        assert f.meta["job_id"] == "job-1" and f.meta["center_freq_hz"] == 433e6
        assert f.meta["bin_hz"] == 1e6 / 16 and f.time_uncertainty_s == 2e-8
    assert (frames[0].time_s, frames[0].time_frac) == (1_764_000_000, 0.25)
    assert (frames[3].time_s, frames[3].time_frac) == (1_764_000_001, 0.75)


def test_sequence_tracker_counts_losses_and_replays():
    tr = wire.SequenceTracker()
    mk = lambda s: wire.Frame(wire.PSD, s, 0, 0.0, 0.0, {"job_id": "j", "node_id": "n"})  # noqa: E731
    assert [tr.check(mk(s)) for s in (0, 1, 4, 4, 2, 5, 2, 3)] == [
        "ok",
        "ok",
        "gap",
        "duplicate",
        "late",
        "ok",
        "duplicate",
        "late",
    ]
    assert (tr.lost, tr.duplicates) == (0, 2)
    assert [tr.check(mk(s)) for s in (9, 7)] == ["gap", "late"]
    assert tr.lost == 2


def test_hostile_frames_raise_wire_error_only():
    """Garbage, truncated and mutated frames: a WireError naming the problem, nothing else."""
    rnd = random.Random(1)
    good = wire.encode(
        wire.Frame(wire.PSD, 1, 2, 0.5, 0.0, {"job_id": "j"}, np.zeros(8, np.float32))
    )
    cases = [
        [],
        [b""],
        good[:2],
        good + [b"x"],
        [good[0][:47], good[1], good[2]],
        [good[0], b"[1,2]", good[2]],
        [good[0], b"\xff\xfe", good[2]],
        [good[0], good[1], good[2][:-1]],
    ]
    for _ in range(400):
        parts = [bytearray(p) for p in good]
        which = rnd.randrange(3)
        if parts[which]:
            for _ in range(rnd.randint(1, 4)):
                parts[which][rnd.randrange(len(parts[which]))] = rnd.randrange(256)
        if rnd.random() < 0.3:
            parts[which] = parts[which][: rnd.randrange(len(parts[which]) + 1)]
        cases.append([bytes(p) for p in parts])
    cases += [
        [bytes(rnd.randrange(256) for _ in range(rnd.randrange(64))) for _ in range(3)]
        for _ in range(100)
    ]
    rejected = 0
    for parts in cases:
        try:
            wire.decode(parts)
        except wire.WireError:
            rejected += 1
    assert rejected >= 100  # most mutations are caught; none raised anything else


def test_bad_encoder_input():
    with pytest.raises(wire.WireError, match="frame type"):
        wire.encode(wire.Frame(9, 0, 0, 0.0, 0.0))
    with pytest.raises(wire.WireError, match="time_frac"):
        wire.encode(wire.Frame(wire.PSD, 0, 0, 1.5, 0.0, {}, np.zeros(1)))
    with pytest.raises(ValueError, match="socket_type"):
        frame_sink("tcp://127.0.0.1:1", socket_type="dealer")
