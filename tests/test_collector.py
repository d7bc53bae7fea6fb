"""frame_sink -> ZeroMQ -> collector -> embedded store, with hostile traffic on the socket."""

import time

import numpy as np
import pmt
import zmq
from drift.orchestrator.collector import Collector
from drift.orchestrator.spectrum_store import SpectrumStore
from gnuradio import blocks, gr

from drift import wire
from drift.frame_sink import frame_sink


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
        good = [wire.encode(wire.Frame(wire.PSD, s, 1_764_000_000 + s, 0.0, 1e-3,
                                       {"job_id": "j", "node_id": "n"},
                                       np.full(8, s, np.float32))) for s in range(10)]
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
        push.send_multipart(wire.encode(wire.Frame(wire.PSD, 12, 1_764_000_012, 0.0, 1e-3,
                                                   {"job_id": "j", "node_id": "n"},
                                                   np.zeros(8, np.float32))))
        assert wait_for(lambda: col.stats.stored == 11), col.stats
        assert wait_for(lambda: col.stats.malformed == sent_bad)
        assert col.stats.duplicates == 5 and col.stats.lost == 2
        frames = store.query("j")
        assert [f.seq for f in frames] == list(range(10)) + [12]
        assert store.add([wire.decode(good[3])]) == 0  # the store is idempotent too
        # time-range queries
        assert [f.seq for f in store.query("j", start=1_764_000_002, end=1_764_000_005)] == [
            2, 3, 4]
    finally:
        push.close(linger=0)
        col.close()
        store.close()
