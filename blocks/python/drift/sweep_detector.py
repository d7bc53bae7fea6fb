#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""sweep_detector: signal detection on whole sweeps of a swept scan.

A swept scan's PSD vectors are hops: each covers only its share of the band, at its own time.
Detecting hop by hop (drift.detector) sees a different band in every vector, so a track ends
at every retune and a signal that straddles two hops is cut in two. This block joins the hops
of each sweep into one spectrum on the sweep's common bin grid (stitch, as `drift scan` does)
and runs the Detector once per complete sweep: a steady signal is one track across hops and
sweeps, and each detection's first_seen_s / last_seen_s are the times of the sweeps (their first
hop's rx_time) it was first and last seen in.
"""

from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import gr

from . import tags
from .detector import Detector, detection_pdu
from .sweep import HopPlan, stitch

_HOP = "drift_hop"
_SWEEP = "drift_sweep"


class sweep_detector(gr.sync_block):
    """PSD vectors of a swept scan in (dB, one per hop, with the rx_time, rx_freq, drift_hop
    and drift_sweep tags of drift.sweeper -> drift.psd); one PDU per detection event out on
    `detections`, as drift.detector publishes them (metadata: `event` and the Detection's
    fields).

    plan: the sweeper's HopPlan (same start, stop, sample rate, FFT size, averages and usable
    fraction), which places every hop's kept bins on the sweep's grid.
    pfa, hysteresis_db: as drift.Detector. confirm_sweeps: sweeps a new signal must be seen in
    before it is reported; hold_sweeps: sweeps it may be missing from before its detection
    ends. max_sweeps: the sweeper's sweep count; after the last one every signal still on is
    ended ("end" events), so the scan's detections are complete when the stream ends (0: the
    scan runs until stopped; call flush() to end them). A sweep missing hops is not detected
    on. With a one-hop plan, vectors without sweeper tags are each one sweep.

    passthrough: the block also outputs its input vectors, with their tags, each after the
    detections it completed were published. A sink that takes both the vectors and the
    detections (DRIFT Frame Sink) then receives every detection before its stream ends:
    GNU Radio drops messages that reach a block after its stream is done.
    """

    def __init__(
        self,
        plan: HopPlan,
        pfa=1e-6,
        hysteresis_db=3.0,
        confirm_sweeps=1,
        hold_sweeps=1,
        max_sweeps=0,
        passthrough=False,
    ):
        if not isinstance(plan, HopPlan):
            raise TypeError(f"plan must be a HopPlan (drift.plan_hops), got {type(plan).__name__}")
        if int(confirm_sweeps) < 1:
            raise ValueError(f"confirm_sweeps must be >= 1, got {confirm_sweeps}")
        if int(hold_sweeps) < 0:
            raise ValueError(f"hold_sweeps must be >= 0, got {hold_sweeps}")
        if int(max_sweeps) < 0:
            raise ValueError(f"max_sweeps must be >= 0, got {max_sweeps}")
        vector = (np.float32, plan.fft_size)
        gr.sync_block.__init__(
            self, "drift_sweep_detector", [vector], [vector] if passthrough else []
        )
        self.plan = plan
        self.passthrough = bool(passthrough)
        self.max_sweeps = int(max_sweeps)
        self.det = Detector(
            plan.bin_hz,
            plan.n_avg,
            pfa,
            hysteresis_db,
            confirm_frames=int(confirm_sweeps),
            hold_frames=int(hold_sweeps),
        )
        self.freqs_hz = plan.freqs_hz
        #: complete sweeps detected on, and sweeps skipped because hops were missing
        self.sweeps_detected = 0
        self.sweeps_skipped = 0
        self._port = pmt.intern("detections")
        self.message_port_register_out(self._port)
        self._lock = threading.Lock()  # work() and flush() run on different threads
        self._time_s = 0.0
        self._freq_hz: float | None = None
        self._hop: int | None = None
        self._sweep = 0
        self._swept = False  # the rows carry the sweeper's drift_hop tags
        self._untagged_rows = 0
        self._sweep_rows: dict[int, np.ndarray] = {}
        self._sweep_times: dict[int, float] = {}
        self._current: int | None = None  # the sweep whose hops are being gathered
        self._reported: set[str] = set()

    # -- stream ----------------------------------------------------------------------------
    def work(self, input_items, output_items):
        rows = input_items[0]
        start = self.nitems_read(0)
        by_row: dict[int, list] = {}
        for tag in self.get_tags_in_range(0, start, start + len(rows)):
            by_row.setdefault(tag.offset - start, []).append(tag)
        with self._lock:
            for i, row in enumerate(rows):
                self._take(row, by_row.get(i, ()))
        if self.passthrough:
            output_items[0][:] = rows
        return len(rows)

    def _read_tags(self, row_tags) -> bool:
        """Update the stream state from one row's tags; True when it starts a hop."""
        hop_tagged = False
        for tag in row_tags:
            key = pmt.symbol_to_string(tag.key)
            if key == "rx_time":
                t = tags.read_rx_time(tag.value)
                self._time_s = self._time_s if t is None else t[0] + t[1]
            elif key == "rx_freq":
                self._freq_hz = tags.read_rx_freq(tag.value)
            elif key == _HOP:
                self._hop = pmt.to_long(tag.value)
                hop_tagged = True
            elif key == _SWEEP:
                self._sweep = pmt.to_long(tag.value)
        return hop_tagged

    def _take(self, row, row_tags) -> None:
        hop_tagged = self._read_tags(row_tags)
        self._swept = self._swept or hop_tagged
        if self._swept:
            hop, sweep = self._hop, self._sweep
        elif len(self.plan.hops) == 1:
            hop, sweep = 0, self._untagged_rows
            self._untagged_rows += 1
        else:
            self._error_once(
                "untagged",
                f"PSD vectors without drift_hop tags, but the plan has "
                f"{len(self.plan.hops)} hops: feed this block from a DRIFT Sweeper "
                "-> DRIFT PSD chain; no detection until it is",
            )
            return
        if not 0 <= hop < len(self.plan.hops):
            self._error_once(
                "hop",
                f"hop {hop} is not in this block's plan of "
                f"{len(self.plan.hops)} hops: give it the Sweeper's start, stop, "
                "sample rate, FFT size and usable fraction",
            )
            return
        centre = self.plan.hops[hop].center_hz
        if self._freq_hz is not None and abs(self._freq_hz - centre) > self.plan.bin_hz / 2:
            self._error_once(
                "freq",
                f"hop {hop} arrived tuned to {self._freq_hz:.0f} Hz, but "
                f"this block's plan puts it at {centre:.0f} Hz: give it the "
                "Sweeper's start, stop, sample rate, FFT size and usable fraction",
            )
            return
        if self._current is not None and sweep != self._current:
            self._close_sweep()  # a sweep that ended without its last hop
        self._current = sweep
        self._sweep_rows[hop] = np.array(row, dtype=np.float32)
        self._sweep_times[hop] = self._time_s
        if hop == len(self.plan.hops) - 1:
            self._close_sweep()

    def _close_sweep(self) -> None:
        sweep, rows, times = self._current, self._sweep_rows, self._sweep_times
        self._current, self._sweep_rows, self._sweep_times = None, {}, {}
        events = []
        if len(rows) == len(self.plan.hops):
            spectrum = stitch(self.plan, rows)
            events += self.det.update(spectrum, self.freqs_hz, min(times.values()))
            self.sweeps_detected += 1
        else:
            self.sweeps_skipped += 1
            self.logger.warn(
                f"sweep {sweep}: {len(self.plan.hops) - len(rows)} of "
                f"{len(self.plan.hops)} hops missing, not detected on"
            )
        if self.max_sweeps and sweep >= self.max_sweeps - 1:
            events += self.det.flush()  # the scan's last sweep: every signal still on ends
        self._publish(events)

    def _publish(self, events) -> None:
        for event, det in events:
            self.message_port_pub(self._port, detection_pdu(event, det))

    def _error_once(self, what: str, message: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            self.logger.error(message)

    def flush(self) -> None:
        """Publish "end" for every signal still going on (for scans that run until stopped;
        call it before stopping the flowgraph)."""
        with self._lock:
            self._publish(self.det.flush())
