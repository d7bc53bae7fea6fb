"""drift sim source: a GNU Radio source of what one node of a scenario receives."""

from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import gr
from gnuradio.drift import tags

from .air import Air
from .scenario import Scenario, load_scenario
from .synth import NodeReceiver

BUFFER_ITEMS = 1 << 16  # the output buffer sim_source asks for, in samples a port


class sim_source(gr.sync_block):
    """The complex baseband one node receives at a centre frequency and sample rate.

    A deterministic function of absolute time: two processes simulating two nodes of the same
    scenario produce mutually consistent streams (true propagation delays, path loss, thermal
    noise, ADC quantization, the nodes' clock and LO errors). The first sample is tagged
    rx_time with the node's own clock (`start_time`, UNIX seconds, default: now) and rx_freq.
    Retunes on a `cmd` message ({"freq": Hz}) like a device: the first sample at the new
    frequency is tagged rx_freq; a frequency outside the modelled device's range is refused
    with its real limit (logged, and the tuning is unchanged). With `realtime` the stream is
    paced to the wall clock (a node); otherwise it runs as fast as it can (tests, rendering).
    An array node has one output port per element, all on one clock and LO (coherent);
    `channel` picks one element alone (one port). `gain_db`: the receiver gain (None: the
    node's default, drift.sim.synth.default_gain_db); each dB above it lowers the full scale
    by one dB.
    """

    def __init__(
        self,
        scenario,
        node_id,
        samp_rate_hz,
        center_hz,
        start_time=None,
        realtime=False,
        quantize=True,
        tune_scale=1.0,
        channel=None,
        gain_db=None,
        air=None,
    ):
        scn = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        channels = scn.node(node_id).channels
        if channel is not None and not 0 <= int(channel) < channels:
            raise ValueError(
                f"channel {channel} does not exist: node {node_id!r} has "
                f"{channels} channel(s), 0-{channels - 1}"
            )
        # channel: one element of an array node alone (a single-port source)
        self._channel = None if channel is None or channels == 1 else int(channel)
        ports = channels if self._channel is None else 1
        gr.sync_block.__init__(self, "drift_sim_source", [], [np.complex64] * ports)
        # room for long work() calls: each call has a fixed cost (the emitters' state is made
        # afresh), so GNU Radio's default buffers (a few thousand samples a call) would halve
        # the rate; realtime pacing still hands out only what the wall clock has reached
        level = self.logger.get_string_level()
        self.logger.set_level("warn")  # GNU Radio logs the request at info level
        self.set_min_output_buffer(BUFFER_ITEMS)
        self.logger.set_level(level)
        # tune_scale: a calibrated LO asks the tuner for freq * scale; tags say the wanted freq
        self._tune_scale = float(tune_scale)
        self._wanted = float(center_hz)
        self.rx = NodeReceiver(
            scn, node_id, samp_rate_hz, center_hz * self._tune_scale, quantize, gain_db
        )
        self._make = (node_id, samp_rate_hz, quantize, gain_db)
        # air: the directory of the scenario's shared air (drift.sim.air); the other nodes'
        # transmissions join this node's world while they last
        self._air = None if air is None else Air(air, scn, node_id)
        start = time.time() if start_time is None else float(start_time)
        self._whole, self._frac = tags.split_seconds(start)
        self._realtime = bool(realtime)
        self._wall0 = None
        self._lock = threading.Lock()
        self._pending = None
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self._on_cmd)

    def _on_cmd(self, msg):
        if not (pmt.is_dict(msg) and pmt.dict_has_key(msg, pmt.intern("freq"))):
            return
        freq = pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL))
        try:
            self.rx.model.check_tuning(freq * self._tune_scale, self.rx.samp_rate_hz)
        except ValueError as exc:
            self.logger.error(str(exc))
            return
        with self._lock:
            self._pending = freq

    def work(self, input_items, output_items):
        ports = range(len(output_items))
        n = min(len(output_items[0]), 1 << 16)
        start = self.nitems_written(0)
        if start == 0:
            self._wall0 = time.monotonic()
            for p in ports:
                self.add_item_tag(p, 0, tags.RX_TIME, tags.rx_time(self._whole, self._frac))
                self.add_item_tag(p, 0, tags.RX_FREQ, tags.rx_freq(self._wanted))
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and pending != self._wanted:
            self._wanted = pending
            self.rx.tune(pending * self._tune_scale)
            for p in ports:
                self.add_item_tag(p, start, tags.RX_FREQ, tags.rx_freq(pending))
        if self._realtime:
            due = self._wall0 + (start + n) / self.rx.samp_rate_hz
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.5))
                n = max(
                    1, min(n, int((time.monotonic() - self._wall0) * self.rx.samp_rate_hz) - start)
                )
        if self._air is not None:
            changed = self._air.changed()
            if changed is not None:
                node_id, rate, quantize, gain_db = self._make
                self.rx = NodeReceiver(
                    changed, node_id, rate, self._wanted * self._tune_scale, quantize, gain_db
                )
        if self._channel is not None:
            x = self.rx.channel_samples(self._channel, start, n, self._whole, self._frac)
        else:
            x = self.rx.samples(start, n, self._whole, self._frac)
        if x.ndim == 1:
            output_items[0][:n] = x
        else:  # an array node: one port per element
            for p in ports:
                output_items[p][:n] = x[p]
        return n
