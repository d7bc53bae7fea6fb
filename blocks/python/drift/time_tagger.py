#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.time_tagger: absolute time on a sample stream, with its uncertainty.

Tags written (GNU Radio conventions plus two of DRIFT's own, at the same offsets):
  rx_time     (uint64 whole seconds, double fraction): the time of the tagged sample
  time_unc    double, seconds: the uncertainty of that rx_time (1 sigma for GPS/PTP/NTP
              estimates, chrony's bound |offset| + root dispersion + root delay / 2 for NTP)
  time_source symbol: device | gpsd | ptp | chrony | ntpd | system

Where rx_time comes from:
  * the device's hardware time: rx_time tags arriving from upstream (gr-uhd style) are passed
    through and become the anchor; each one that does not continue the sample count (a jump
    after an overflow) re-anchors, counted in `reanchors`;
  * otherwise the host clock: rx_time = the host clock when the first samples arrive, then
    the sample count at the nominal rate. After an overflow or dropped-sample report the
    count is wrong, so it re-anchors on the host clock, as gr-uhd does on its device clock:
    an upstream tag `rx_drop` (value: samples dropped, an integer, when the driver knows it)
    moves the count on exactly; a tag `overflow` / `rx_overflow`, or a message on the
    `overflow` port, re-reads the host clock at the next sample.

The host clock's quality is read once at start from the time services running on the node
(chrony, ntpd, ptp4l through pmc, gpsd) by clock_quality(); none running: the system clock,
uncertain by UNSYNCED_UNC_S. All parsers work on the services' text, testable without them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np
import pmt
from gnuradio import gr

from . import tags

UNSYNCED_UNC_S = 1.0  # a host clock with no time service: assume a second
HOST_LATENCY_UNC_S = 2e-3  # host-clock stamps: samples sit in driver/USB buffers meanwhile


@dataclass(frozen=True)
class ClockQuality:
    source: str  # chrony | ntpd | ptp | gpsd | system
    synchronized: bool
    uncertainty_s: float
    detail: str = ""


def parse_chronyc_tracking(text: str) -> ClockQuality | None:
    """`chronyc tracking` output -> quality (None when it is not that output)."""
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    if "leap status" not in fields or "system time" not in fields:
        return None

    def seconds(key):
        m = re.match(r"([-+]?[0-9.eE+-]+)\s+seconds", fields.get(key, ""))
        return float(m.group(1)) if m else math.nan

    leap = fields["leap status"].lower()
    synced = "not synchronised" not in leap and "not synchronized" not in leap
    offset, delay, disp = seconds("system time"), seconds("root delay"), seconds("root dispersion")
    unc = abs(offset) + disp + delay / 2
    if not synced or not math.isfinite(unc):
        return ClockQuality("chrony", False, UNSYNCED_UNC_S, fields.get("reference id", ""))
    return ClockQuality("chrony", True, unc, fields.get("reference id", ""))


def parse_ntpq_rv(text: str) -> ClockQuality | None:
    """`ntpq -c rv` output (ntpd; values in ms) -> quality."""
    vals = dict(re.findall(r"(\w+)=(\"[^\"]*\"|[^,\s]+)", text))
    if "rootdisp" not in vals and "offset" not in vals:
        return None
    synced = "sync_ntp" in text or "sync_pps" in text or "sync_uhf" in text
    if "leap_alarm" in text or "sync_unspec" in text:
        synced = False
    try:
        unc = (
            abs(float(vals.get("offset", "nan")))
            + float(vals.get("rootdisp", "nan"))
            + float(vals.get("rootdelay", "nan")) / 2
        ) * 1e-3
    except ValueError:
        unc = math.nan
    if not synced or not math.isfinite(unc):
        return ClockQuality("ntpd", False, UNSYNCED_UNC_S)
    return ClockQuality("ntpd", True, unc, f"stratum {vals.get('stratum', '?')}")


def parse_pmc_time_status(text: str) -> ClockQuality | None:
    """`pmc -u -b 0 'GET TIME_STATUS_NP'` output (ptp4l) -> quality: the offset from the
    grandmaster (ns) when one is present."""
    m = re.search(r"master_offset\s+([-+]?\d+)", text)
    if not m:
        return None
    gm = re.search(r"gmPresent\s+(\w+)", text)
    if not gm or gm.group(1).lower() != "true":
        return ClockQuality("ptp", False, UNSYNCED_UNC_S, "no grandmaster")
    # the PHC's offset; phc2sys adds its own (comparable) error on the way to the system clock
    unc = max(abs(int(m.group(1))) * 1e-9, 100e-9)
    return ClockQuality("ptp", True, unc, "grandmaster present")


def parse_gpsd_json(lines: str) -> ClockQuality | None:
    """gpsd's JSON reports (after ?WATCH) -> quality from the last TPV: a fix (mode >= 2)
    with its estimated time error `ept` (s)."""
    tpv = None
    for line in lines.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("class") == "TPV":
            tpv = obj
    if tpv is None:
        return None
    if int(tpv.get("mode", 0)) < 2:
        return ClockQuality("gpsd", False, UNSYNCED_UNC_S, "no fix")
    return ClockQuality("gpsd", True, float(tpv.get("ept", 0.005)), f"mode {tpv['mode']}")


def _run(cmd, timeout=2.0):
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _gpsd(host="127.0.0.1", port=2947, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b'?WATCH={"enable":true,"json":true};\n')
            data = b""
            deadline = time.monotonic() + timeout
            while b'"TPV"' not in data and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace")
    except OSError:
        return None


def clock_quality() -> ClockQuality:
    """The host clock's quality from the first time service that answers (ptp4l, chrony,
    ntpd, gpsd); the system clock with UNSYNCED_UNC_S when none does."""
    probes = (
        (lambda: _run(["pmc", "-u", "-b", "0", "GET TIME_STATUS_NP"]), parse_pmc_time_status),
        (lambda: _run(["chronyc", "tracking"]), parse_chronyc_tracking),
        (lambda: _run(["ntpq", "-c", "rv"]), parse_ntpq_rv),
        (_gpsd, parse_gpsd_json),
    )
    for read, parse in probes:
        text = read()
        q = parse(text) if text else None
        if q is not None and q.synchronized:
            return q
    return ClockQuality("system", False, UNSYNCED_UNC_S, "no time service answered")


class time_tagger(gr.sync_block):
    """Pass-through that keeps rx_time (and time_unc, time_source) on a stream; see the module.

    samp_rate: the nominal sample rate. device_time_unc: uncertainty of upstream (hardware)
    rx_time tags, seconds. quality: a ClockQuality for the host clock (default: read from the
    running time services at start). reanchor_tolerance: an upstream rx_time further than this
    (s) from the count re-anchors (and counts as a jump).
    """

    def __init__(self, samp_rate, device_time_unc=100e-9, quality=None, reanchor_tolerance=1e-6):
        gr.sync_block.__init__(self, "drift_time_tagger", [np.complex64], [np.complex64])
        self.fs = float(samp_rate)
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise ValueError(f"samp_rate must be positive, got {samp_rate}")
        self.device_unc = float(device_time_unc)
        self.tolerance = float(reanchor_tolerance)
        self._quality = quality
        self.anchor = None  # (offset, whole, frac, source)
        self.reanchors = 0  # re-anchors after a jump, drop or overflow
        self._lock = threading.Lock()
        self._overflow = False
        self.message_port_register_in(pmt.intern("overflow"))
        self.set_msg_handler(pmt.intern("overflow"), self._on_overflow)

    @property
    def quality(self) -> ClockQuality:
        if self._quality is None:
            self._quality = clock_quality()
        return self._quality

    def start(self):
        self.quality  # noqa: B018 - read the time services before samples flow
        return True

    def _on_overflow(self, _msg):
        with self._lock:
            self._overflow = True

    def time_at(self, offset):
        """(whole, frac) of an absolute sample offset from the current anchor."""
        a_off, whole, frac, _ = self.anchor
        return tags.normalized(whole, frac + (offset - a_off) / self.fs)

    def _tag(self, offset, whole, frac, unc, source):
        self.add_item_tag(0, offset, tags.RX_TIME, tags.rx_time(whole, frac))
        self._tag_quality(offset, unc, source)

    def _tag_quality(self, offset, unc, source):
        self.add_item_tag(0, offset, tags.TIME_UNC, pmt.from_double(unc))
        self.add_item_tag(0, offset, tags.TIME_SOURCE, pmt.intern(source))

    def _host_anchor(self, offset, extra_unc=0.0):
        now = time.time()
        whole = math.floor(now)
        self.anchor = (offset, whole, now - whole, self.quality.source)
        unc = math.hypot(self.quality.uncertainty_s, HOST_LATENCY_UNC_S + extra_unc)
        self._tag(offset, whole, now - whole, unc, self.quality.source)

    def work(self, input_items, output_items):
        n = len(output_items[0])
        output_items[0][:] = input_items[0][:n]
        start = self.nitems_read(0)
        events = []
        for t in self.get_tags_in_window(0, 0, n):
            key = pmt.symbol_to_string(t.key)
            if key in ("rx_time", "rx_drop", "overflow", "rx_overflow"):
                events.append((t.offset, key, t.value))
        events.sort(key=lambda e: e[0])
        with self._lock:
            overflow, self._overflow = self._overflow, False
        if overflow and self.anchor is not None and self.anchor[3] != "device":
            self.reanchors += 1
            self._host_anchor(start, 0.0)
        for offset, key, value in events:
            if key == "rx_time":
                if (t := tags.read_rx_time(value)) is None:
                    continue
                whole, frac = t
                if self.anchor is not None:
                    w, f = self.time_at(offset)
                    if abs((whole - w) + (frac - f)) > self.tolerance:
                        self.reanchors += 1
                self.anchor = (offset, whole, frac, "device")
                self._tag_quality(offset, self.device_unc, "device")  # rx_time passes through
            elif key == "rx_drop" and self.anchor is not None:
                dropped = (
                    pmt.to_uint64(value)
                    if pmt.is_uint64(value)
                    else (pmt.to_long(value) if pmt.is_integer(value) else None)
                )
                self.reanchors += 1
                if self.anchor[3] == "device":
                    continue  # the device's next rx_time says where it resumed
                if dropped is None:
                    self._host_anchor(offset)
                else:  # the count moves on by the samples that never arrived
                    w, f = self.time_at(offset + int(dropped))
                    self.anchor = (offset, w, f, self.anchor[3])
                    self._tag(
                        offset,
                        w,
                        f,
                        math.hypot(self.quality.uncertainty_s, HOST_LATENCY_UNC_S),
                        self.anchor[3],
                    )
            elif key in ("overflow", "rx_overflow") and self.anchor is not None:
                if self.anchor[3] != "device":
                    self.reanchors += 1
                    self._host_anchor(offset)
        if self.anchor is None and n:
            self._host_anchor(start)
        return n
