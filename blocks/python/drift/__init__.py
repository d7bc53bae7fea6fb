#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-drift: DRIFT's GNU Radio blocks.

C++ blocks (from the pybind11 module): psd, tdoa (GCC delay PDUs; gcc_delay and gcc_estimator
for arrays), tdoa_multi (every pair of M streams, one transform per input), align (streams on a
common time base).
Python blocks and helpers: detector (CFAR detections as PDUs), sweep (hop plans, the sweeper
block that retunes a source, stitching of hops into one spectrum), sweep_detector (detection
on whole stitched sweeps), time_tagger (rx_time with its uncertainty, re-anchored after
overflows), timed_head (a capture from an absolute instant), align_reference (align in
Python), ref_sync (clock offsets from a reference transmitter), bearing (AoA from an array),
tdoa_locate (position fixes from the delay PDUs of several tdoa blocks or one tdoa_multi). DF
and synchronization algorithms live in gnuradio.drift.df and are callable without a flowgraph.

gnuradio.drift.df (DF and localization) and gnuradio.drift.wire (the ZeroMQ wire format) need
NumPy and SciPy alone: on a host without GNU Radio's runtime (an analysis-only coordinator)
they still import, and the blocks are left out.
"""

try:
    from gnuradio import gr as _gr_runtime
except ImportError:  # a host without GNU Radio's runtime: only the pure-Python parts
    _gr_runtime = None

if _gr_runtime is not None:
    # Every block. One that fails to import fails the module's import: a broken block must
    # not vanish from a flowgraph silently.
    try:
        from .drift_python import *  # noqa: F401,F403  (C++ blocks)
    except ImportError:
        # Only a source tree imported under another name (a test collector walking blocks/)
        # lacks the compiled module; the installed gnuradio.drift must have it.
        if __name__ == "gnuradio.drift":
            raise
    from . import devices, tags, wire  # noqa: F401
    from .align_reference import align_reference  # noqa: F401  (drift.align in Python)
    from .bearing import bearing  # noqa: F401
    from .detector import Detector, detector  # noqa: F401
    from .frame_sink import frame_sink, iq_sink  # noqa: F401
    from .ref_sync import ref_sync  # noqa: F401
    from .sweep import HopPlan, plan_hops, stitch, sweeper  # noqa: F401
    from .sweep_detector import sweep_detector  # noqa: F401
    from .tdoa_locate import tdoa_locate  # noqa: F401
    from .time_tagger import ClockQuality, clock_quality, time_tagger  # noqa: F401
    from .timed_head import timed_head  # noqa: F401
