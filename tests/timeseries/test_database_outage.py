"""Stop the database mid-stream, start it again: the stored frames equal the frames sent, in
order, with no gaps and no duplicates. Real InfluxDB (killed and restarted on the same data
directory), real ZeroMQ, the real collector with its disk spool; and the same for the embedded
SQLite store made unwritable by another process's exclusive lock."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import numpy as np
import zmq
from gnuradio.drift import wire

from drift.orchestrator import metrics
from drift.orchestrator.collector import Collector
from drift.orchestrator.timeseries import open_store

from .influx import InfluxServer
from .test_stores import psd


def _wait(cond, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _stream(address, frames, pace_s):
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(address)
    for f in frames:
        push.send_multipart(wire.encode(f))
        time.sleep(pace_s)
    push.close(linger=5000)


def _check(store, sent):
    got = store.query("job-1")
    assert [f.seq for f in got] == [f.seq for f in sent]  # in order, no gaps, no duplicates
    for g, s in zip(got, sent, strict=True):
        assert np.array_equal(g.payload, s.payload)
    assert store.count("job-1") == len(sent)


def test_influxdb_stopped_and_restarted_mid_stream_loses_nothing(tmp_path):
    server = InfluxServer(tmp_path / "influx").start()
    url = f"influxdb://127.0.0.1:{server.port}/drift"
    store = open_store(url, tmp_path)
    col = Collector(store, "tcp://127.0.0.1:0", spool_dir=tmp_path / "spool")
    col.start()
    spooled0 = metrics.REGISTRY.get_sample_value("drift_frames_spooled_total") or 0
    sent = [psd(i, 1_764_000_000 + 0.05 * i) for i in range(300)]
    sender = threading.Thread(target=_stream, args=(col.address, sent, 0.01))
    try:
        sender.start()
        assert _wait(lambda: col.stats.stored >= 60, 30)
        server.stop(signal.SIGKILL)  # the database dies without warning
        assert _wait(lambda: col.spool.depth > 0, 30), "frames must spool while it is down"
        time.sleep(1.0)
        server.start()  # same ports, same data directory
        sender.join(60)
        assert _wait(lambda: col.spool.depth == 0 and col.stats.stored >= 300, 60)
        _check(store, sent)
        assert col.stats.lost == 0 and col.stats.malformed == 0
        spooled = metrics.REGISTRY.get_sample_value("drift_frames_spooled_total") - spooled0
        assert spooled == col.stats.spooled > 0
    finally:
        col.close()
        store.close()
        server.stop()


def test_locked_sqlite_store_spools_and_catches_up(tmp_path):
    store = open_store(None, tmp_path)
    col = Collector(store, "tcp://127.0.0.1:0")
    col.start()
    sent = [psd(i, 1_764_000_000 + 0.05 * i) for i in range(200)]
    sender = threading.Thread(target=_stream, args=(col.address, sent, 0.005))
    locker = sqlite3.connect(tmp_path / "spectrum.sqlite", timeout=30, isolation_level=None)
    try:
        sender.start()
        assert _wait(lambda: col.stats.stored >= 30, 30)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the file: writes fail
        assert _wait(lambda: col.spool.depth > 0, 30)
        time.sleep(0.5)
        locker.execute("ROLLBACK")
        sender.join(60)
        assert _wait(lambda: col.spool.depth == 0 and col.stats.stored >= 200, 60)
        _check(store, sent)
    finally:
        locker.close()
        col.close()
        store.close()
