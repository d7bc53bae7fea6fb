#!/usr/bin/env python3
#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""drift.time_tagger in real flowgraphs, and the time-service parsers on their real output."""

import importlib
import time

import numpy as np
import pmt
from gnuradio import blocks, gr, gr_unittest

# the module (the package attribute of the same name is the block)
tt = importlib.import_module("gnuradio.drift.time_tagger")

CHRONY_SYNCED = """\
Reference ID    : C0A80101 (gps.lan)
Stratum         : 2
Ref time (UTC)  : Tue Nov 24 05:40:11 2026
System time     : 0.000012345 seconds fast of NTP time
Last offset     : -0.000003021 seconds
RMS offset      : 0.000021775 seconds
Frequency       : 7.214 ppm slow
Residual freq   : -0.001 ppm
Skew            : 0.036 ppm
Root delay      : 0.000400000 seconds
Root dispersion : 0.000050000 seconds
Update interval : 16.1 seconds
Leap status     : Normal
"""

CHRONY_UNSYNCED = """\
Reference ID    : 00000000 ()
Stratum         : 0
Ref time (UTC)  : Thu Jan 01 00:00:00 1970
System time     : 0.000000000 seconds fast of NTP time
Last offset     : +0.000000000 seconds
RMS offset      : 0.000000000 seconds
Frequency       : 0.000 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.000 ppm
Root delay      : 1.000000000 seconds
Root dispersion : 1.000000000 seconds
Update interval : 0.0 seconds
Leap status     : Not synchronised
"""

NTPQ_RV = (
    "associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,\n"
    'version="ntpd 4.2.8p15@1.3728-o", processor="x86_64", system="Linux",\n'
    "leap=00, stratum=2, precision=-23, rootdelay=12.412, rootdisp=30.118,\n"
    "refid=192.168.1.1, reftime=e9f0d1c2.5c3ab000, tc=10, peer=22453, offset=-0.250,\n"
    "frequency=-7.212, sys_jitter=0.113, clk_jitter=0.098, clk_wander=0.004\n"
)

PMC_TIME_STATUS = """\
sending: GET TIME_STATUS_NP
\t90e2ba.fffe.2bf5a8-0 seq 0 RESPONSE MANAGEMENT TIME_STATUS_NP
\t\tmaster_offset              -312
\t\tingress_time               1795500011862417335
\t\tcumulativeScaledRateOffset +0.000000000
\t\tscaledLastGmPhaseChange    0
\t\tgmTimeBaseIndicator        0
\t\tlastGmPhaseChange          0x0000'0000000000000000.0000
\t\tgmPresent                  true
\t\tgmIdentity                 001d2d.fffe.000001
"""

GPSD = (
    '{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}\n'
    '{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0","driver":"u-blox"}]}\n'
    '{"class":"WATCH","enable":true,"json":true}\n'
    '{"class":"TPV","device":"/dev/ttyACM0","mode":3,"time":"2026-11-24T05:40:12.000Z",'
    '"ept":0.005,"lat":48.14,"lon":11.56,"alt":520.1}\n'
)

FS = 1e6


def rx_time(whole, frac):
    return pmt.make_tuple(pmt.from_uint64(whole), pmt.from_double(frac))


def tag(offset, key, value):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern(key)
    t.value = value
    return t


def run(tags, n=20000, quality=None, **kw):
    """A vector source with `tags` -> time_tagger -> vector sink; returns (block, tags)."""
    quality = quality or tt.ClockQuality("chrony", True, 1e-4)
    src = blocks.vector_source_c(np.zeros(n, dtype=np.complex64), False, 1, tags)
    blk = tt.time_tagger(FS, quality=quality, **kw)
    sink = blocks.vector_sink_c()
    tb = gr.top_block(catch_exceptions=False)
    tb.connect(src, blk, sink)
    tb.run()
    assert len(sink.data()) == n
    out = {}
    for t in sink.tags():
        out.setdefault(pmt.symbol_to_string(t.key), []).append((t.offset, t.value))
    return blk, out


def as_float(v):
    return pmt.to_uint64(pmt.tuple_ref(v, 0)) + pmt.to_double(pmt.tuple_ref(v, 1))


class qa_time_tagger(gr_unittest.TestCase):
    def test_parsers_on_real_outputs(self):
        q = tt.parse_chronyc_tracking(CHRONY_SYNCED)
        self.assertTrue(q.synchronized)
        self.assertAlmostEqual(q.uncertainty_s, 12.345e-6 + 50e-6 + 200e-6, places=12)
        q = tt.parse_chronyc_tracking(CHRONY_UNSYNCED)
        self.assertFalse(q.synchronized)
        self.assertEqual(q.uncertainty_s, tt.UNSYNCED_UNC_S)
        q = tt.parse_ntpq_rv(NTPQ_RV)
        self.assertTrue(q.synchronized)
        self.assertAlmostEqual(q.uncertainty_s, (0.25 + 30.118 + 12.412 / 2) * 1e-3, places=9)
        self.assertFalse(tt.parse_ntpq_rv(NTPQ_RV.replace("sync_ntp", "sync_unspec")).synchronized)
        q = tt.parse_pmc_time_status(PMC_TIME_STATUS)
        self.assertTrue(q.synchronized)
        self.assertAlmostEqual(q.uncertainty_s, 312e-9, places=15)
        self.assertFalse(
            tt.parse_pmc_time_status(
                PMC_TIME_STATUS.replace(
                    "gmPresent                  true", "gmPresent                  false"
                )
            ).synchronized
        )
        q = tt.parse_gpsd_json(GPSD)
        self.assertEqual((q.source, q.synchronized, q.uncertainty_s), ("gpsd", True, 0.005))
        self.assertFalse(tt.parse_gpsd_json(GPSD.replace('"mode":3', '"mode":1')).synchronized)
        for parse in (
            tt.parse_chronyc_tracking,
            tt.parse_ntpq_rv,
            tt.parse_pmc_time_status,
            tt.parse_gpsd_json,
        ):
            self.assertIsNone(parse("506 Cannot talk to daemon\n"))

    def test_no_time_service_running(self):
        # none of chrony, ntpd, ptp4l or gpsd runs here: the system clock, uncertain by 1 s
        q = tt.clock_quality()
        if q.source == "system":
            self.assertFalse(q.synchronized)
            self.assertEqual(q.uncertainty_s, tt.UNSYNCED_UNC_S)
        else:  # a machine with a time service: its answer must be a sane one
            self.assertTrue(q.synchronized)
            self.assertLess(q.uncertainty_s, 1.0)
        blk, tags = run([], quality=tt.ClockQuality("system", False, tt.UNSYNCED_UNC_S))
        self.assertEqual(pmt.symbol_to_string(tags["time_source"][0][1]), "system")
        self.assertGreaterEqual(pmt.to_double(tags["time_unc"][0][1]), tt.UNSYNCED_UNC_S)

    def test_host_clock_when_no_device_time(self):
        before = time.time()
        blk, tags = run([])
        after = time.time()
        self.assertEqual([o for o, _ in tags["rx_time"]], [0])
        t0 = as_float(tags["rx_time"][0][1])
        self.assertTrue(before - 1e-3 <= t0 <= after + 1e-3)
        unc = pmt.to_double(tags["time_unc"][0][1])
        self.assertAlmostEqual(unc, np.hypot(1e-4, tt.HOST_LATENCY_UNC_S), places=12)
        self.assertEqual(pmt.symbol_to_string(tags["time_source"][0][1]), "chrony")
        self.assertEqual(blk.reanchors, 0)

    def test_device_time_passes_through_and_jumps_reanchor(self):
        # device time continues the count at 5000, then jumps (an overflow) at 12000
        tags_in = [
            tag(0, "rx_time", rx_time(1_764_000_000, 0.25)),
            tag(5000, "rx_time", rx_time(1_764_000_000, 0.255)),
            tag(12000, "rx_time", rx_time(1_764_000_000, 0.2751)),
        ]
        blk, tags = run(tags_in, device_time_unc=50e-9)
        self.assertEqual([o for o, _ in tags["rx_time"]], [0, 5000, 12000])  # not duplicated
        self.assertEqual([o for o, _ in tags["time_unc"]], [0, 5000, 12000])
        self.assertTrue(all(pmt.to_double(v) == 50e-9 for _, v in tags["time_unc"]))
        self.assertEqual(blk.reanchors, 1)  # only the jump
        self.assertEqual(blk.anchor[:3], (12000, 1_764_000_000, 0.2751))

    def test_dropped_samples_move_the_count_exactly(self):
        blk, tags = run([tag(8000, "rx_drop", pmt.from_uint64(1500))])
        (o0, v0), (o1, v1) = tags["rx_time"]
        self.assertEqual((o0, o1), (0, 8000))
        # sample 8000 is really sample 9500 of the device's count
        self.assertAlmostEqual(as_float(v1) - as_float(v0), 9500 / FS, delta=1e-6)
        self.assertEqual(blk.reanchors, 1)

    def test_overflow_reanchors_on_the_host_clock(self):
        blk, tags = run([tag(7000, "overflow", pmt.PMT_T)])
        self.assertEqual([o for o, _ in tags["rx_time"]], [0, 7000])
        self.assertEqual(blk.reanchors, 1)
        # a fresh reading of the host clock, not the count (the source ran faster than 1 MS/s)
        t0, t1 = (as_float(v) for _, v in tags["rx_time"])
        self.assertLess(t1 - t0, 7000 / FS)

    def test_overflow_message_port(self):
        # a driver's overflow report as a message, every 10 ms, while 0.2 s of samples flow
        blk = tt.time_tagger(FS, quality=tt.ClockQuality("ntpd", True, 1e-3))
        src = blocks.vector_source_c(np.zeros(1000, dtype=np.complex64), True)
        thr = blocks.throttle(gr.sizeof_gr_complex, FS)
        head = blocks.head(gr.sizeof_gr_complex, int(0.2 * FS))
        strobe = blocks.message_strobe(pmt.PMT_T, 10)
        sink = blocks.vector_sink_c()
        tb = gr.top_block(catch_exceptions=False)
        tb.connect(src, thr, head, blk, sink)
        tb.msg_connect(strobe, "strobe", blk, "overflow")
        tb.start()  # the strobe never ends on its own: stop once the samples are through
        deadline = time.monotonic() + 30
        while len(sink.data()) < int(0.2 * FS) and time.monotonic() < deadline:
            time.sleep(0.01)
        tb.stop()
        tb.wait()
        times = [t for t in sink.tags() if pmt.symbol_to_string(t.key) == "rx_time"]
        self.assertGreaterEqual(blk.reanchors, 1)
        self.assertEqual(len(times), 1 + blk.reanchors)
        stamps = [as_float(t.value) for t in times]
        self.assertEqual(stamps, sorted(stamps))
        with self.assertRaises(ValueError):
            tt.time_tagger(0)


if __name__ == "__main__":
    gr_unittest.run(qa_time_tagger)
