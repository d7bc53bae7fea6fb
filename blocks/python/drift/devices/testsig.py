#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""The built-in test signal (``testsig[,tones=F@DBM[@BW];...,noise=DBM_HZ,seed=N,start=UNIX]``):
emitters of known power over a flat noise floor, calibrated by construction."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from .. import tags
from .base import Capabilities, DeviceError, DeviceSpec

DEFAULT_TONES = (  # (frequency Hz, power dBm[, bandwidth Hz]): an FM band of sorts
    (88.9e6, -62.0, 150e3),
    (91.3e6, -75.0),
    (94.7e6, -55.0, 180e3),
    (99.1e6, -70.0, 120e3),
    (103.5e6, -58.0),
    (106.1e6, -80.0),
)


class test_signal_source(gr.sync_block):
    """Emitters of known power over flat noise, as a calibrated receiver would see them.

    Each emitter is (freq_hz, power_dbm) for a tone or (freq_hz, power_dbm, bandwidth_hz) for
    band-limited noise. Sample power is in mW, so drift.psd with cal_offset_db=0 reads dBm/Hz.
    Retunes on a `cmd` message ({"freq": Hz}) and tags the first sample at the new centre with
    rx_freq; rx_time counts from `start_time` (UNIX seconds) at sample 0. Deterministic for a
    seed.
    """

    def __init__(
        self,
        samp_rate_hz,
        center_hz,
        tones=DEFAULT_TONES,
        noise_dbm_hz=-150.0,
        seed=1,
        start_time=None,
    ):
        gr.sync_block.__init__(self, "drift_test_signal", [], [np.complex64])
        from scipy import signal as sps

        self.samp_rate_hz = float(samp_rate_hz)
        self.noise_dbm_hz = float(noise_dbm_hz)
        self._rng = np.random.default_rng(seed)
        self._emitters = []
        for spec in tones:
            f, p = float(spec[0]), float(spec[1])
            bw = float(spec[2]) if len(spec) > 2 else 0.0
            if bw >= self.samp_rate_hz:
                raise DeviceError(f"testsig: bandwidth {bw:g} Hz is not below the sample rate")
            taps = None
            if bw > 0:
                taps = sps.firwin(63, bw / 2, fs=self.samp_rate_hz, window=("kaiser", 6.0))
                taps /= np.sqrt(np.sum(taps**2))  # unit noise gain: power stays p
            self._emitters.append(
                {
                    "f": f,
                    "amp": math.sqrt(10 ** (p / 10)),
                    "taps": taps,
                    "zi": None if taps is None else np.zeros(62, complex),
                }
            )
        self.tones = [tuple(t) for t in tones]
        self._center = float(center_hz)
        self._pending = float(center_hz)
        self._lock = threading.Lock()
        self._start_time = time.time() if start_time is None else float(start_time)
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self._on_cmd)

    def _on_cmd(self, msg):
        if pmt.is_dict(msg) and pmt.dict_has_key(msg, pmt.intern("freq")):
            with self._lock:
                self._pending = pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL))

    def work(self, input_items, output_items):
        from scipy import signal as sps

        out = output_items[0]
        n = len(out)
        start = self.nitems_written(0)
        with self._lock:
            pending = self._pending
        if start == 0:
            self.add_item_tag(0, 0, tags.RX_TIME, tags.rx_time_at(self._start_time))
        if start == 0 or pending != self._center:
            self._center = pending
            self.add_item_tag(0, start, tags.RX_FREQ, tags.rx_freq(pending))
        fs = self.samp_rate_hz
        sigma = math.sqrt(10 ** (self.noise_dbm_hz / 10) * fs / 2)
        x = self._rng.standard_normal(2 * n).view(np.complex128) * sigma
        t = (start + np.arange(n)) / fs
        for e in self._emitters:
            off = e["f"] - self._center
            if abs(off) >= fs / 2:
                continue  # out of band: the receiver's filter removes it
            tone = e["amp"] * np.exp(2j * np.pi * off * t)
            if e["taps"] is not None:  # band-limited noise around the carrier
                w = self._rng.standard_normal(2 * n).view(np.complex128) / math.sqrt(2)
                base, e["zi"] = sps.lfilter(e["taps"], 1.0, w, zi=e["zi"])
                tone *= base
            x += tone
        out[:] = x
        return n


class TestSignalBackend:
    kind = "testsig"

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        return DeviceSpec(self.kind, args, text) if "testsig" in args else None

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        return Capabilities(
            driver="testsig",
            freq_range_hz=(1e6, 6e9),
            sample_rate_range_hz=(1e5, 20e6),
            default_sample_rate_hz=2.4e6,
            max_bandwidth_hz=20e6,
            usable_fraction=0.75,
            time_sources=["host"],
        )

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        tones = DEFAULT_TONES
        if spec.args.get("tones"):
            try:
                tones = [
                    tuple(float(v) for v in t.split("@")) for t in spec.args["tones"].split(";")
                ]
            except ValueError as exc:
                raise DeviceError("testsig: tones must be FREQ@DBM;FREQ@DBM...") from exc
        return test_signal_source(
            samp_rate_hz,
            center_hz,
            tones,
            float(spec.args.get("noise", -150.0)),
            int(spec.args.get("seed", 1)),
            float(spec.args["start"]) if "start" in spec.args else None,
        )

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return "testsig"


BACKEND = TestSignalBackend()
