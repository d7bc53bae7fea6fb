#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""The stream tags DRIFT blocks agree on, made, read and carried in one place.

- ``rx_time``: the absolute time of the tagged sample on the stream's clock, GNU Radio's (and
  UHD's) convention: a tuple (uint64 whole seconds, double fraction of a second), so that
  nanoseconds survive at UNIX-epoch scale.
- ``rx_freq``: the frequency (Hz) the tagged sample and those after it were tuned to.
- ``time_unc``: the 1-sigma uncertainty (s) of the rx_time from here on; ``time_source`` the
  clock it comes from (gps, ptp, ntp, system, device).

Times are kept as (whole, fraction) pairs, the fraction in [0, 1); :class:`Anchor` is an
rx_time at a sample offset, from which the time of any other sample of the same stream follows
by counting; :class:`RowTags` follows them row by row on a block's input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pmt

RX_TIME = pmt.intern("rx_time")
RX_FREQ = pmt.intern("rx_freq")
TIME_UNC = pmt.intern("time_unc")
TIME_SOURCE = pmt.intern("time_source")


def normalized(whole: int, frac: float) -> tuple[int, float]:
    """(whole, frac) with the fraction carried into [0, 1)."""
    carry = math.floor(frac)
    return int(whole) + int(carry), float(frac - carry)


def split_seconds(seconds: float) -> tuple[int, float]:
    """UNIX seconds as (whole, fraction)."""
    whole = math.floor(seconds)
    return int(whole), float(seconds - whole)


def rx_time(whole: int, frac: float) -> pmt.pmt_t:
    """An rx_time value (the fraction normalized into [0, 1))."""
    w, f = normalized(whole, frac)
    return pmt.make_tuple(pmt.from_uint64(w), pmt.from_double(f))


def rx_time_at(seconds: float) -> pmt.pmt_t:
    """An rx_time value for UNIX seconds given as one float."""
    return rx_time(*split_seconds(seconds))


def read_rx_time(value: pmt.pmt_t) -> tuple[int, float] | None:
    """(whole, fraction) of an rx_time value; None when it is not one."""
    try:
        if not pmt.is_tuple(value) or pmt.length(value) < 2:
            return None
        return normalized(
            pmt.to_uint64(pmt.tuple_ref(value, 0)), pmt.to_double(pmt.tuple_ref(value, 1))
        )
    except (RuntimeError, ValueError, TypeError):
        return None


def rx_freq(hz: float) -> pmt.pmt_t:
    return pmt.from_double(float(hz))


def read_rx_freq(value: pmt.pmt_t) -> float:
    return float(pmt.to_double(value))


def is_key(tag, key: pmt.pmt_t) -> bool:
    """Whether a stream tag has this key."""
    return pmt.eq(tag.key, key)


@dataclass(frozen=True)
class Anchor:
    """An rx_time (whole, frac) that holds at sample `offset` of a stream of `rate` samples a
    second: the time of any sample of it by counting."""

    whole: int
    frac: float
    offset: int
    rate: float

    @classmethod
    def from_tag(cls, tag, rate: float) -> Anchor | None:
        t = read_rx_time(tag.value)
        return None if t is None else cls(t[0], t[1], int(tag.offset), float(rate))

    def at(self, offset: int) -> tuple[int, float]:
        """(whole, frac) of the sample at `offset`."""
        return normalized(self.whole, self.frac + (offset - self.offset) / self.rate)

    def seconds_after(self, whole: int, frac: float) -> float:
        """This anchor's time minus (whole, frac), computed in parts (exact at UNIX scale)."""
        return (self.whole - whole) + (self.frac - frac)


class RowTags:
    """The latest rx_time (whole, fractional seconds), rx_freq, drift_hop and drift_sweep seen
    on a block's input 0, advanced one row (item) at a time (vector sinks read their rows'
    time and frequency with it)."""

    def __init__(self):
        self.time = (0, 0.0)
        self.freq = 0.0
        self.hop = None
        self.sweep = None
        self.sweep_tagged = False  # this row carried a drift_sweep tag

    @property
    def time_s(self) -> float:
        return self.time[0] + self.time[1]

    def rows(self, block, n):
        """Yield 0 .. n-1, with the state updated by the tags on each row first."""
        start = block.nitems_read(0)
        by_row = {}
        for tag in block.get_tags_in_range(0, start, start + n):
            by_row.setdefault(tag.offset - start, []).append(tag)
        for i in range(n):
            self.sweep_tagged = False
            for tag in by_row.get(i, ()):
                key = pmt.symbol_to_string(tag.key)
                if key == "rx_time":
                    self.time = read_rx_time(tag.value) or self.time
                elif key == "rx_freq":
                    self.freq = read_rx_freq(tag.value)
                elif key == "drift_hop":
                    self.hop = pmt.to_long(tag.value)
                elif key == "drift_sweep":
                    self.sweep = pmt.to_long(tag.value)
                    self.sweep_tagged = True
            yield i
