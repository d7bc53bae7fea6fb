#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""frame_sink and iq_sink: PSD vectors, detections and IQ on ZeroMQ in DRIFT's wire format."""

from __future__ import annotations

import re
import threading

import numpy as np
import pmt
import zmq
from gnuradio import gr

from . import tags, wire

_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def _curve_keys(server_key, secret_key, bind):
    """The (server public, own public, own secret) keys of a Curve client, as bytes, or None
    for plaintext. A sink without its own secret key makes a fresh pair (for a server that
    takes any client: encryption without identity)."""
    server_key, secret_key = str(server_key or ""), str(secret_key or "")
    if not server_key:
        if secret_key:
            raise ValueError("curve_secret_key needs curve_server_key (the server to connect to)")
        return None
    if bind:
        raise ValueError("Curve keys apply to a sink that connects to a Curve server, not binds")
    if not _Z85_KEY.match(server_key):
        raise ValueError("curve_server_key must be a Curve public key: 40 characters of Z85")
    if not secret_key:
        public, secret = zmq.curve_keypair()
    elif not _Z85_KEY.match(secret_key):
        raise ValueError("curve_secret_key must be a Curve secret key: 40 characters of Z85")
    else:
        secret = secret_key.encode("ascii")
        public = zmq.curve_public(secret)
    return server_key.encode("ascii"), public, secret


def _open_socket(ctx, socket_type, address, bind, curve, linger_ms):
    sock = ctx.socket(zmq.PUB if socket_type == "pub" else zmq.PUSH)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if curve is not None:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
    (sock.bind if bind else sock.connect)(address)
    return sock


class frame_sink(gr.sync_block):
    """PSD vectors in (dB, fft_size bins, with rx_time / rx_freq / drift_hop / drift_sweep
    tags), one wire-format PSD frame out per vector; detection PDUs in on `detections`, one
    detection frame out per PDU. See docs/wire-format.md.

    address: a ZeroMQ endpoint (tcp://127.0.0.1:5555, ipc://...), or "" for none; bind (node
    side, default) or connect. socket_type: "pub" (default) or "push" (blocks instead of dropping when no one
    reads). Each frame type has its own sequence number from 0.

    curve_server_key: with connect, the public key (Z85) of a CurveZMQ server to send to:
    frames then travel encrypted, from the key pair of curve_secret_key (Z85; its public key
    is derived from it), or from a fresh pair when that is empty (a server that takes any
    client). Empty (default): plaintext. A DRIFT collector takes frames only from the keys
    of enrolled nodes; a node's agent relays its flowgraphs' frames with the node's own key.
    """

    def __init__(
        self,
        address,
        job_id="",
        node_id="",
        fft_size=1024,
        samp_rate_hz=1e6,
        n_avg=1,
        units="dBm/Hz",
        cal_offset_db=0.0,
        time_uncertainty_s=0.0,
        flowgraph_hash="",
        bind=True,
        socket_type="pub",
        calibrated=True,
        curve_server_key="",
        curve_secret_key="",
    ):
        if socket_type not in ("pub", "push"):
            raise ValueError(f"socket_type must be 'pub' or 'push', got {socket_type!r}")
        if int(fft_size) < 1:
            raise ValueError(f"fft_size must be >= 1, got {fft_size}")
        self._curve = _curve_keys(curve_server_key, curve_secret_key, bind)
        gr.sync_block.__init__(self, "drift_frame_sink", [(np.float32, int(fft_size))], [])
        self.address, self.bind, self.socket_type = address, bool(bind), socket_type
        self.fft_size = int(fft_size)
        self.meta = {
            "job_id": str(job_id),
            "node_id": str(node_id),
            "samp_rate_hz": float(samp_rate_hz),
            "bin_hz": float(samp_rate_hz) / self.fft_size,
            "n_bins": self.fft_size,
            "n_avg": int(n_avg),
            "units": units,
            "cal_offset_db": float(cal_offset_db),
            "flowgraph_hash": flowgraph_hash,
        }
        self.flags = 0 if calibrated else wire.FLAG_UNCALIBRATED
        self.time_uncertainty_s = float(time_uncertainty_s)
        self._seq = {wire.PSD: 0, wire.DETECTION: 0}
        self._tags = tags.RowTags()
        self._lock = threading.Lock()  # ZeroMQ sockets are not thread-safe
        self._ctx = zmq.Context.instance()
        self._sock = None
        self.message_port_register_in(pmt.intern("detections"))
        self.set_msg_handler(pmt.intern("detections"), self._on_detection)

    def start(self):
        if not self.address:  # no endpoint: frames go nowhere (a flowgraph run on its own)
            return True
        self._sock = _open_socket(
            self._ctx, self.socket_type, self.address, self.bind, self._curve, 1000
        )
        return True

    def stop(self):
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        return True

    def _send(self, ftype, payload, extra=None):
        meta = dict(self.meta, center_freq_hz=self._tags.freq, **(extra or {}))
        frame = wire.Frame(
            ftype,
            self._seq[ftype],
            self._tags.time[0],
            self._tags.time[1],
            self.time_uncertainty_s,
            meta,
            payload,
            self.flags,
        )
        with self._lock:
            if self._sock is None:
                return
            self._sock.send_multipart(wire.encode(frame), copy=False)
            self._seq[ftype] += 1

    def _on_detection(self, msg):
        meta = pmt.car(msg) if pmt.is_pair(msg) else msg
        if not pmt.is_dict(meta):
            self.logger.warn("detections: a PDU without a metadata dict, dropped")
            return
        det = pmt.to_python(meta)
        det = {
            str(k): (v if not isinstance(v, (np.generic,)) else v.item()) for k, v in det.items()
        }
        self._send(wire.DETECTION, [det])

    def work(self, input_items, output_items):
        rows = input_items[0]
        t = self._tags
        for i in t.rows(self, len(rows)):
            extra = {} if t.hop is None else {"hop": t.hop, "sweep": t.sweep}
            self._send(wire.PSD, rows[i], extra)
        return len(rows)


class iq_sink(gr.sync_block):
    """Complex samples in, wire-format IQ frames out on ZeroMQ: one frame per `snippet`
    samples (the last one shorter), each stamped with the absolute time of its first sample
    (from the upstream rx_time tag plus the sample count) and the tuned frequency (rx_freq).

    Same socket and Curve options as frame_sink; `address` "" sends nothing. `cal_offset_db` (the
    device's dBFS-to-dBm offset) goes into every frame's metadata: 10 log10(mean |x|^2) +
    cal_offset_db is a received power in dBm.

    `channels` > 1: the input is vectors of that length, an array's snapshots (one sample of
    every coherent channel at one time); a frame holds `snippet` snapshots, its payload the
    channels interleaved sample by sample (as SigMF's multi-channel recordings), and its
    metadata says `channels`. Times and `samp_rate_hz` are per channel.
    """

    def __init__(
        self,
        address,
        job_id="",
        node_id="",
        samp_rate_hz=1e6,
        snippet=65536,
        time_uncertainty_s=0.0,
        flowgraph_hash="",
        bind=False,
        socket_type="push",
        center_freq_hz=0.0,
        cal_offset_db=0.0,
        curve_server_key="",
        curve_secret_key="",
        channels=1,
    ):
        if int(snippet) < 1:
            raise ValueError(f"snippet must be >= 1 sample, got {snippet}")
        if not float(samp_rate_hz) > 0:
            raise ValueError(f"samp_rate_hz must be > 0, got {samp_rate_hz}")
        if socket_type not in ("pub", "push"):
            raise ValueError(f"socket_type must be 'pub' or 'push', got {socket_type!r}")
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self._curve = _curve_keys(curve_server_key, curve_secret_key, bind)
        self.channels = int(channels)
        item = np.complex64 if self.channels == 1 else (np.complex64, self.channels)
        gr.sync_block.__init__(self, "drift_iq_sink", [item], [])
        self.address, self.bind, self.socket_type = address, bool(bind), socket_type
        self.rate = float(samp_rate_hz)
        self.snippet = int(snippet)
        self.meta = {
            "job_id": str(job_id),
            "node_id": str(node_id),
            "samp_rate_hz": self.rate,
            "units": "FS",
            "flowgraph_hash": flowgraph_hash,
            "cal_offset_db": float(cal_offset_db),
        }
        if self.channels > 1:
            self.meta["channels"] = self.channels
        self.time_uncertainty_s = float(time_uncertainty_s)
        self.freq = float(center_freq_hz)
        self._anchor = tags.Anchor(0, 0.0, 0, self.rate)  # rx_time at an absolute offset
        shape = self.snippet if self.channels == 1 else (self.snippet, self.channels)
        self._buf = np.empty(shape, np.complex64)
        self._fill = 0
        self._first = 0  # absolute offset of the buffer's first sample
        self._seq = 0
        self._ctx = zmq.Context.instance()
        self._sock = None

    def start(self):
        if self.address:
            self._sock = _open_socket(
                self._ctx, self.socket_type, self.address, self.bind, self._curve, 5000
            )
        return True

    def stop(self):
        self._flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return True

    def _flush(self):
        if self._fill == 0:
            return
        whole, frac = self._anchor.at(self._first)
        frame = wire.Frame(
            wire.IQ,
            self._seq,
            whole,
            frac,
            self.time_uncertainty_s,
            dict(self.meta, center_freq_hz=self.freq),
            self._buf[: self._fill].reshape(-1).copy(),
        )
        if self._sock is not None:
            self._sock.send_multipart(wire.encode(frame), copy=False)
        self._seq += 1
        self._first += self._fill
        self._fill = 0

    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        start = self.nitems_read(0)
        cuts = []
        for tag in self.get_tags_in_range(0, start, start + n):
            key = pmt.symbol_to_string(tag.key)
            if key in ("rx_time", "rx_freq"):
                cuts.append((tag.offset, key, tag.value))
        cuts.sort(key=lambda c: c[0])
        i = 0
        for offset, key, value in cuts + [(start + n, None, None)]:
            # samples before this tag belong to the frame being filled
            while start + i < offset:
                take = min(offset - start - i, self.snippet - self._fill)
                self._buf[self._fill : self._fill + take] = x[i : i + take]
                self._fill += take
                i += take
                if self._fill == self.snippet:
                    self._flush()
            if key is None:
                break
            # a retune or a time jump starts a new frame, so every frame has one time base
            self._flush()
            self._first = offset
            if key == "rx_time":
                t = tags.read_rx_time(value)
                if t is not None:
                    self._anchor = tags.Anchor(t[0], t[1], offset, self.rate)
            else:
                self.freq = tags.read_rx_freq(value)
        return n
