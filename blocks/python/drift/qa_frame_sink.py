#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.frame_sink and drift.iq_sink as CurveZMQ clients: frames reach a Curve server that
takes only the sink's key, from that key; a plaintext sink, or one with another key, reaches
nothing. The server is pyzmq's own (a PULL socket and pyzmq's ZAP authenticator)."""

import time

import numpy as np
import pmt
import zmq
from gnuradio import blocks, drift, gr, gr_unittest
from gnuradio.drift import wire
from zmq.auth.thread import ThreadAuthenticator

WHOLE = 1_764_000_000


class CurveServer:
    """A PULL socket on loopback that takes the Curve clients whose public keys it allows."""

    def __init__(self, allowed):
        self.ctx = zmq.Context()
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        allowed = set(allowed)

        class Keys:
            def callback(self, domain, key):
                return key in allowed

        self.auth.configure_curve_callback("*", credentials_provider=Keys())
        self.public, secret = zmq.curve_keypair()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.curve_server = True
        self.sock.curve_secretkey = secret
        self.sock.curve_publickey = self.public
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"

    def receive(self, n, timeout_s=10.0):
        """Up to n frames (each with the key that sent it), or fewer when none comes for a
        while."""
        got = []
        deadline = time.monotonic() + timeout_s
        while len(got) < n and time.monotonic() < deadline:
            if self.sock.poll(100):
                parts = self.sock.recv_multipart(copy=False)
                got.append((wire.decode([p.bytes for p in parts]), parts[0].get("User-Id")))
        return got

    def close(self):
        self.sock.close(linger=0)
        self.auth.stop()
        self.ctx.term()


def run_psd(sink, rows):
    tag = gr.tag_utils.python_to_tag(
        (
            0,
            pmt.intern("rx_time"),
            pmt.make_tuple(pmt.from_uint64(WHOLE), pmt.from_double(0.0)),
            pmt.intern("src"),
        )
    )
    tb = gr.top_block(catch_exceptions=False)
    src = blocks.vector_source_f(rows.ravel().tolist(), False, rows.shape[1], [tag])
    tb.connect(src, sink)
    tb.run()


class qa_frame_sink_curve(gr_unittest.TestCase):
    def setUp(self):
        self.public, self.secret = zmq.curve_keypair()
        self.server = CurveServer([self.public])

    def tearDown(self):
        self.server.close()

    def psd_sink(self, **curve):
        return drift.frame_sink(
            self.server.address, "job", "node", 8, 1e6, bind=False, socket_type="push", **curve
        )

    def test_frames_from_the_allowed_key_arrive_attributed_to_it(self):
        rows = np.arange(5 * 8, dtype=np.float32).reshape(5, 8)
        sink = self.psd_sink(
            curve_server_key=self.server.public.decode(), curve_secret_key=self.secret.decode()
        )
        run_psd(sink, rows)
        got = self.server.receive(5)
        self.assertEqual([f.seq for f, _ in got], [0, 1, 2, 3, 4])
        self.assertEqual({user for _, user in got}, {self.public.decode()})
        np.testing.assert_array_equal(np.array([f.payload for f, _ in got]), rows)

    def test_plaintext_or_another_key_reaches_nothing(self):
        rows = np.zeros((3, 8), dtype=np.float32)
        _, other = zmq.curve_keypair()
        for curve in (
            {},
            {"curve_server_key": self.server.public.decode(), "curve_secret_key": other.decode()},
            {"curve_server_key": self.server.public.decode()},  # a fresh key pair
        ):
            # the frames wait in the sink's queue (a PUSH socket connects at once); it gives
            # up on them when the flowgraph stops (after its 1 s linger)
            run_psd(self.psd_sink(**curve), rows)
            self.assertEqual(self.server.receive(1, timeout_s=1.5), [], curve)

    def test_iq_sink_sends_over_curve(self):
        x = (np.arange(100) + 1j * np.arange(100)).astype(np.complex64)
        tb = gr.top_block(catch_exceptions=False)
        sink = drift.iq_sink(
            self.server.address,
            "job",
            "node",
            1e3,
            40,
            curve_server_key=self.server.public.decode(),
            curve_secret_key=self.secret.decode(),
        )
        tb.connect(blocks.vector_source_c(x.tolist(), False), sink)
        tb.run()
        got = self.server.receive(3)
        self.assertEqual([len(f.payload) for f, _ in got], [40, 40, 20])
        np.testing.assert_array_equal(np.concatenate([f.payload for f, _ in got]), x)

    def test_bad_curve_parameters_are_refused(self):
        key = self.server.public.decode()
        for args, message in [
            ({"curve_server_key": "short"}, "curve_server_key"),
            ({"curve_server_key": key, "curve_secret_key": "x" * 39}, "curve_secret_key"),
            ({"curve_secret_key": self.secret.decode()}, "needs curve_server_key"),
        ]:
            with self.assertRaisesRegex(ValueError, message):
                drift.frame_sink("tcp://127.0.0.1:1", bind=False, **args)
        with self.assertRaisesRegex(ValueError, "connects"):
            drift.frame_sink("tcp://127.0.0.1:1", bind=True, curve_server_key=key)


if __name__ == "__main__":
    gr_unittest.run(qa_frame_sink_curve)
