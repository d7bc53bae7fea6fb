#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-drift: DRIFT's GNU Radio blocks.

C++ blocks (from the pybind11 module): psd, tdoa (GCC delay PDUs; gcc_delay for arrays).
Python blocks and helpers: detector (CFAR detections as PDUs), sweep (hop plans, the sweeper
block that retunes a source, stitching of hops into one spectrum), sweep_detector (detection
on whole stitched sweeps), time_tagger (rx_time with its uncertainty, re-anchored after
overflows), timed_head (a capture from an absolute instant), align (streams on a common time
base), ref_sync (clock offsets from a reference transmitter), bearing (AoA from an array). DF
and synchronization algorithms live in gnuradio.drift.df and are callable without a flowgraph.
"""

try:
    from .drift_python import *  # noqa: F401,F403  (C++ blocks)
except ImportError:
    # Only a source tree imported under another name (a test collector walking blocks/)
    # lacks the compiled module; the installed gnuradio.drift must have it.
    if __name__ == "gnuradio.drift":
        raise

try:
    from .detector import Detector, detector  # noqa: F401
except ImportError:  # pragma: no cover - during a partial build only
    pass
try:
    from .sweep import HopPlan, plan_hops, stitch, sweeper  # noqa: F401
    from .sweep_detector import sweep_detector  # noqa: F401
except ImportError:  # pragma: no cover
    pass
try:
    from .time_tagger import ClockQuality, clock_quality, time_tagger  # noqa: F401
    from .timed_head import timed_head  # noqa: F401
except ImportError:  # pragma: no cover
    pass
try:
    from .align import align  # noqa: F401
    from .ref_sync import ref_sync  # noqa: F401
except ImportError:  # pragma: no cover
    pass
try:
    from .bearing import bearing  # noqa: F401
except ImportError:  # pragma: no cover
    pass
