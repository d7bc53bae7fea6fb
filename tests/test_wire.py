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


def test_a_batch_decoded_with_a_metadata_cache_is_decoded_as_without_one():
    """Frames of one stream share their metadata part: with a cache it is parsed once, and
    each frame still gets a dict of its own; a malformed frame in the batch is still refused
    the same way."""
    meta = {"job_id": "j", "node_id": "n1", "calibration": {"offset_db": -3.5}}
    sent = [
        wire.Frame(
            wire.PSD,
            i,
            10 + i,
            0.25,
            1e-3,
            meta if i != 2 else {"job_id": "k"},
            np.full(4, -100 - i, np.float32),
        )
        for i in range(5)
    ]
    batch = [wire.encode(f) for f in sent]
    batch.insert(3, [batch[0][0], b"{not json", batch[0][2]])
    cache: dict = {}
    got = []
    for parts in batch:
        try:
            got.append(wire.decode(parts, meta_cache=cache))
        except wire.WireError as exc:
            got.append(exc.reason)
    assert got[3] == "metadata"
    plain = [wire.decode(p) for i, p in enumerate(batch) if i != 3]
    decoded = [g for i, g in enumerate(got) if i != 3]
    assert [g.meta for g in decoded] == [f.meta for f in plain] == [f.meta for f in sent]
    assert [g.seq for g in decoded] == [0, 1, 2, 3, 4]
    assert len(cache) == 2  # two distinct metadata parts parsed
    decoded[0].meta["node_id"] = "changed"
    assert decoded[1].meta["node_id"] == "n1" and decoded[4].meta["node_id"] == "n1"


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


def test_a_frame_of_another_version_is_refused_naming_the_version():
    """Version 1 is the only one this decoder reads: a frame of version 2 (or 0) is refused
    as such, even when every other byte is a valid version-1 frame."""
    good = wire.encode(
        wire.Frame(wire.PSD, 1, 2, 0.5, 0.0, {"job_id": "j"}, np.zeros(8, np.float32))
    )
    assert wire.decode(good).seq == 1
    for version in (0, 2, 0xFFFF):
        header = bytearray(good[0])
        header[4:6] = version.to_bytes(2, "little")
        with pytest.raises(wire.WireError, match=f"version {version} is not supported") as err:
            wire.decode([bytes(header), good[1], good[2]])
        assert err.value.reason == "version"


def test_refusals_name_their_reason():
    good = wire.encode(
        wire.Frame(wire.PSD, 1, 2, 0.5, 0.0, {"job_id": "j"}, np.zeros(8, np.float32))
    )
    header = bytearray(good[0])
    header[6:8] = (9).to_bytes(2, "little")
    cases = {
        "parts": good[:2],
        "header": [good[0][:40], good[1], good[2]],
        "magic": [b"XXXX" + good[0][4:], good[1], good[2]],
        "frame_type": [bytes(header), good[1], good[2]],
        "metadata": [good[0], b"[1]", good[2]],
        "payload": [good[0], good[1], good[2][:-4]],
    }
    for reason, parts in cases.items():
        with pytest.raises(wire.WireError) as err:
            wire.decode(parts)
        assert err.value.reason == reason, (reason, str(err.value))
    with pytest.raises(wire.WireError) as err:
        wire.decode(good, max_items=7)
    assert err.value.reason == "too_many_items"
    assert len(wire.decode(good, max_items=8).payload) == 8


def _frame(seq, job="j", node="n", ftype=wire.PSD):
    return wire.Frame(ftype, seq, 0, 0.0, 0.0, {"job_id": job, "node_id": node})


def test_sequence_tracker_keeps_holes_as_ranges_and_forgets_the_oldest_beyond_its_cap():
    tr = wire.SequenceTracker(max_streams=8, max_hole_ranges=3)
    stream = ("j", "n", wire.PSD)
    assert [tr.check(_frame(s)) for s in (0, 1_000_000)] == ["ok", "gap"]
    assert tr.holes(stream) == [(1, 1_000_000)] and tr.lost == 999_999
    # frames that come late split the range; the ends shrink it
    assert [tr.check(_frame(s)) for s in (500_000, 1, 999_999, 1)] == [
        "late",
        "late",
        "late",
        "duplicate",
    ]
    assert tr.holes(stream) == [(2, 500_000), (500_001, 999_999)]
    assert tr.lost == 999_996
    # more ranges than the cap: the oldest are forgotten (their frames stay lost)
    assert [tr.check(_frame(s)) for s in (1_000_002, 1_000_004)] == ["gap", "gap"]
    assert tr.holes(stream) == [(500_001, 999_999), (1_000_001, 1_000_002), (1_000_003, 1_000_004)]
    assert tr.forgotten_ranges == 1 and tr.lost == 999_998
    assert tr.check(_frame(3)) == "duplicate"  # its hole was forgotten: taken for a replay
    assert tr.check(_frame(1_000_003)) == "late"
    assert tr.streams == {stream: [10, 999_997, 2]}


def test_sequence_tracker_evicts_the_least_recently_used_stream():
    tr = wire.SequenceTracker(max_streams=3, max_hole_ranges=4)
    for node in "abc":
        tr.check(_frame(0, node=node))
    tr.check(_frame(1, node="a"))  # a is now the most recent: b goes first
    tr.check(_frame(0, node="d"))
    assert sorted(k[1] for k in tr.streams) == ["a", "c", "d"] and tr.evicted == 1
    assert tr.check(_frame(1, node="b")) == "ok"  # b starts afresh
    assert sorted(k[1] for k in tr.streams) == ["a", "b", "d"] and tr.evicted == 2


def test_sequence_tracker_memory_is_bounded_under_a_hole_flood():
    """A tracker with its default bounds, flooded the way an attacker would: a jump of a
    million on every stream, holes punched at every other number, and more streams than
    it keeps. What it holds (tracemalloc: every allocation it made) stays under 16 MiB, and
    its counts stay within their bounds. Keeping every hole took about 70 MB per jump."""
    import tracemalloc

    tracemalloc.start()
    try:
        tr = wire.SequenceTracker()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(tr.max_streams + 500):
            job = f"{i:036d}"  # as long as a UUID
            for s in (0, 1_000_000):
                tr.check(_frame(s, job=job))
        for s in range(1_000_002, 1_020_000, 2):
            tr.check(_frame(s, job=f"{tr.max_streams + 499:036d}"))
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(tr) == tr.max_streams and tr.evicted == 500
    assert tr.hole_ranges <= tr.max_streams * tr.max_hole_ranges
    assert held < 16 << 20, f"the tracker holds {held / 2**20:.1f} MiB"
