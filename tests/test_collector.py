"""frame_sink -> ZeroMQ -> collector -> embedded store, with hostile traffic on the socket."""

import time

import numpy as np
import pmt
import zmq
from gnuradio import blocks, gr
from gnuradio.drift import wire
from gnuradio.drift.frame_sink import frame_sink

from drift.orchestrator.collector import Collector
from drift.orchestrator.spectrum_store import SpectrumStore


def wait_for(cond, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not cond():
        time.sleep(0.01)
    return cond()


def run_sink(address, rows, job="job-1", node="n1", t0=1_764_000_000):
    t = gr.tag_t()
    t.offset, t.key = 0, pmt.intern("rx_time")
    t.value = pmt.make_tuple(pmt.from_uint64(t0), pmt.from_double(0.0))
    tb = gr.top_block(catch_exceptions=False)
    src = blocks.vector_source_f(rows.ravel().tolist(), False, rows.shape[1], [t])
    # a Python block must stay referenced while the flowgraph runs
    sink = frame_sink(address, job, node, rows.shape[1], 1e6, 1, bind=False, socket_type="push")
    tb.connect(src, sink)
    tb.run()


def test_frames_arrive_in_order_complete_and_once(tmp_path):
    store = SpectrumStore(str(tmp_path / "spectrum.sqlite"))
    col = Collector(store, "tcp://127.0.0.1:0")
    col.start()
    try:
        rows = np.random.default_rng(0).normal(-150, 1, size=(2000, 256)).astype(np.float32)
        run_sink(col.address, rows)
        assert wait_for(lambda: col.stats.stored == 2000), col.stats
        frames = store.query("job-1", "n1")
        assert [f.seq for f in frames] == list(range(2000))
        np.testing.assert_array_equal(np.array([f.payload for f in frames]), rows)
        assert col.stats.lost == 0 and col.stats.malformed == 0
    finally:
        col.close()
        store.close()


def test_garbage_and_replays_are_counted_and_dropped(tmp_path):
    store = SpectrumStore(str(tmp_path / "spectrum.sqlite"))
    col = Collector(store, "tcp://127.0.0.1:0")
    col.start()
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(col.address)
    try:
        good = [
            wire.encode(
                wire.Frame(
                    wire.PSD,
                    s,
                    1_764_000_000 + s,
                    0.0,
                    1e-3,
                    {"job_id": "j", "node_id": "n"},
                    np.full(8, s, np.float32),
                )
            )
            for s in range(10)
        ]
        rng = np.random.default_rng(1)
        sent_bad = 0
        for k, parts in enumerate(good):
            push.send_multipart(parts)
            push.send_multipart([rng.bytes(int(rng.integers(0, 80)))])  # garbage
            push.send_multipart(parts[:2])  # truncated
            push.send_multipart([parts[0][:20], parts[1], parts[2]])  # short header
            sent_bad += 3
            if k % 3 == 0:
                push.send_multipart(parts)  # replay
        push.send_multipart(good[9])
        # a gap: sequence 12 after 9 means 2 frames lost
        push.send_multipart(
            wire.encode(
                wire.Frame(
                    wire.PSD,
                    12,
                    1_764_000_012,
                    0.0,
                    1e-3,
                    {"job_id": "j", "node_id": "n"},
                    np.zeros(8, np.float32),
                )
            )
        )
        assert wait_for(lambda: col.stats.stored == 11), col.stats
        assert wait_for(lambda: col.stats.malformed == sent_bad)
        assert col.stats.duplicates == 5 and col.stats.lost == 2
        frames = store.query("j")
        assert [f.seq for f in frames] == list(range(10)) + [12]
        assert store.add([wire.decode(good[3])]) == 0  # the store is idempotent too
        # time-range queries
        assert [f.seq for f in store.query("j", start=1_764_000_002, end=1_764_000_005)] == [
            2,
            3,
            4,
        ]
    finally:
        push.close(linger=0)
        col.close()
        store.close()


def test_fuzzed_traffic_stores_each_valid_frame_once_and_tells_listeners(tmp_path):
    """Bounded fuzz: valid frames in any order after the first, replays, truncations, wrong part
    counts and random bytes on one socket. Oracle: the frames built here."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    store = SpectrumStore(str(tmp_path / "spectrum.sqlite"))
    col = Collector(store, "tcp://127.0.0.1:0")
    heard: dict[str, list[int]] = {}
    col.add_listener(lambda frames: [heard.setdefault(f.key[0], []).append(f.seq) for f in frames])
    col.start()
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(col.address)
    counter = iter(range(10_000))

    def frame(job, seq):
        return wire.Frame(
            wire.PSD,
            seq,
            1_764_000_000 + seq,
            0.0,
            1e-3,
            {"job_id": job, "node_id": "n"},
            np.arange(16, dtype=np.float32) + seq,
        )

    op = st.one_of(
        st.tuples(st.just("good"), st.integers(1, 40)),
        st.tuples(st.just("replay"), st.integers(0, 40)),
        st.tuples(st.just("truncate"), st.integers(0, 40), st.integers(0, 200)),
        st.tuples(st.just("parts"), st.integers(0, 40), st.integers(0, 5)),
        st.tuples(st.just("garbage"), st.binary(max_size=120)),
    )

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(op, max_size=30))
    def check(ops):
        job = f"fuzz-{next(counter)}"
        s0 = (col.stats.stored, col.stats.malformed, col.stats.duplicates, col.stats.lost)
        sent: dict[int, wire.Frame] = {0: frame(job, 0)}
        push.send_multipart(wire.encode(sent[0]))  # the stream starts at 0
        bad = replays = 0
        for o in ops:
            if o[0] == "good":
                f = frame(job, o[1])
                if o[1] in sent:
                    replays += 1
                sent[o[1]] = f
                push.send_multipart(wire.encode(f))
            elif o[0] == "replay":
                seq = sorted(sent)[o[1] % len(sent)]
                push.send_multipart(wire.encode(sent[seq]))
                replays += 1
            elif o[0] == "truncate":  # a header cut short, always invalid
                parts = wire.encode(frame(job, o[1]))
                push.send_multipart([parts[0][: o[2] % len(parts[0])]] + parts[1:])
                bad += 1
            elif o[0] == "parts":  # anything but 3 parts
                parts = wire.encode(frame(job, o[1]))
                n = o[2] if o[2] != 3 else 4
                push.send_multipart((parts + [b"x", b"y", b"z"])[:n] or [b""])
                bad += 1
            else:
                push.send_multipart([o[1]])  # one part: never a frame
                bad += 1
        # every message handled (the replays after the last stored frame included), then exact
        assert wait_for(
            lambda: (
                col.stats.stored - s0[0] == len(sent)
                and col.stats.malformed - s0[1] == bad
                and col.stats.duplicates - s0[2] >= replays
            )
        ), (col.stats, len(sent), bad)
        assert col.stats.duplicates - s0[2] == replays
        # holes filled late stop counting as lost; what never came stays lost
        assert col.stats.lost - s0[3] == max(sent) + 1 - len(sent)
        got = store.query(job)
        assert sorted(f.seq for f in got) == sorted(sent)
        for f in got:
            np.testing.assert_array_equal(f.payload, sent[f.seq].payload)
        assert sorted(heard.get(job, [])) == sorted(sent)

    try:
        check()
    finally:
        push.close(linger=0)
        col.close()
        store.close()


def test_frames_over_the_limits_or_of_another_version_are_refused_and_counted_by_reason(
    tmp_path,
):
    """Refused before storage and counted by reason, in the collector's stats and its
    Prometheus counter: another wire-format version, more bins than allowed, three parts
    over the size limit together, ids too long to track. A single part over the limit is
    never read: ZeroMQ drops the connection that sends it. The good frames around them are
    stored."""
    from drift.orchestrator import metrics

    def counted(reason):
        return metrics.REGISTRY.get_sample_value("drift_frames_refused_total", {"reason": reason})

    store = SpectrumStore(str(tmp_path / "spectrum.sqlite"))
    col = Collector(store, "tcp://127.0.0.1:0", max_frame_bytes=64 << 10, max_frame_bins=100)
    col.start()
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(col.address)
    before = {r: counted(r) or 0 for r in ("version", "too_many_bins", "too_large", "bad_ids")}

    def frame(seq, bins=8, **meta):
        return wire.encode(
            wire.Frame(
                wire.PSD,
                seq,
                1_764_000_000 + seq,
                0.0,
                1e-3,
                {"job_id": "j", "node_id": "n", **meta},
                np.full(bins, seq, np.float32),
            )
        )

    try:
        push.send_multipart(frame(0))
        v2 = frame(1)
        v2[0] = v2[0][:4] + (2).to_bytes(2, "little") + v2[0][6:]
        push.send_multipart(v2)
        push.send_multipart(frame(2, bins=101))
        header, meta, payload = frame(3, bins=100)
        push.send_multipart([header, meta + b" " * (64 << 10), payload])
        push.send_multipart(frame(4, job_id="j" * 129))
        push.send_multipart(frame(5, bins=100))
        assert wait_for(lambda: col.stats.stored == 2), col.stats
        assert wait_for(lambda: sum(col.stats.refused.values()) == 4), col.stats
        assert col.stats.refused == {"version": 1, "too_many_bins": 1, "too_large": 1, "bad_ids": 1}
        assert {r: counted(r) - n for r, n in before.items()} == {
            "version": 1,
            "too_many_bins": 1,
            "too_large": 1,
            "bad_ids": 1,
        }
        # one part of 1 MiB: the connection is dropped before it is read
        big = ctx.socket(zmq.PUSH)
        big.setsockopt(zmq.LINGER, 0)
        big.connect(col.address)
        big.send_multipart(frame(6, bins=1 << 18))
        assert wait_for(lambda: col.stats.connections["disconnected"] >= 1), col.stats
        big.close()
        push.send_multipart(frame(7))
        assert wait_for(lambda: col.stats.stored == 3), col.stats
        assert [f.seq for f in store.query("j")] == [0, 5, 7]
        assert sum(col.stats.refused.values()) == 4
    finally:
        push.close()
        col.close()
        store.close()
