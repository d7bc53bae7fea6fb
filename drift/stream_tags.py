"""The stream tags DRIFT's vector sinks read, tracked row by row."""

from __future__ import annotations

import pmt


class RowTags:
    """The latest rx_time (whole, fractional seconds), rx_freq, drift_hop and drift_sweep seen
    on a block's input 0, advanced one row (item) at a time."""

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
                    self.time = (int(pmt.to_uint64(pmt.tuple_ref(tag.value, 0))),
                                 float(pmt.to_double(pmt.tuple_ref(tag.value, 1))))
                elif key == "rx_freq":
                    self.freq = pmt.to_double(tag.value)
                elif key == "drift_hop":
                    self.hop = pmt.to_long(tag.value)
                elif key == "drift_sweep":
                    self.sweep = pmt.to_long(tag.value)
                    self.sweep_tagged = True
            yield i
