"""IQ captures: a node's IQ frames of a job joined back into one recording.

A node's ``iq_sink`` (:mod:`gnuradio.drift.frame_sink`) cuts its stream into wire-format IQ frames of
``snippet`` samples, each stamped with the node's clock at its first sample, and starts a new
frame at every retune or time jump. :func:`join_iq` puts the stored frames of one node and job
back together in sequence order. It stops at the first point where the frames stop being one
contiguous stream, so the samples it returns can always be read as a single recording whose
sample k was taken at ``time_s + time_frac + k / sample_rate_hz`` (the node's clock):

- a sequence number is missing (a frame was lost, or the first stored frame is not number 0);
- a frame does not start where the previous one ended (within :data:`TIME_TOLERANCE_S`);
- the sample rate or the centre frequency changes (a retune);
- a frame says samples were dropped before it (``wire.FLAG_OVERFLOW``).

Then :attr:`IqCapture.complete` is False. Frames lost after the last one that arrived leave no
trace in the sequence numbers: such a capture is only shorter than asked for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from gnuradio.drift import wire

if TYPE_CHECKING:
    from drift.orchestrator.spectrum_store import StoredFrame

log = logging.getLogger(__name__)

#: How far a frame's first sample may be from where the previous frame ended. The node derives
#: each frame's time from one rx_time anchor in whole seconds plus a float64 fraction, which is
#: exact to well under a picosecond over hours; a real clock step is far larger.
TIME_TOLERANCE_S = 1e-9


@dataclass(frozen=True, eq=False)
class IqCapture:
    """One node's IQ of one job, as a single contiguous stream (see the module's docstring)."""

    job_id: str
    node_id: str
    samples: np.ndarray  # complex64, the frames' payloads joined in sequence order
    sample_rate_hz: float
    center_freq_hz: float
    time_s: int  # first sample's time: whole UNIX seconds (the node's clock)
    time_frac: float  # and the fraction, [0, 1)
    time_uncertainty_s: float  # the node's declared clock uncertainty (1-sigma)
    meta: dict  # the first frame's metadata (job_id, node_id, flowgraph_hash, cal_offset_db...)
    frames: int  # frames joined
    flags: int  # OR of the joined frames' flags (wire.FLAG_OVERFLOW etc.)
    complete: bool  # False when the frames stopped being one contiguous stream

    @property
    def channels(self) -> int:
        """Coherent channels (an array's elements): the samples interleave them sample by
        sample, so sample k of channel m is ``samples[k * channels + m]``."""
        return _channels(self.meta)

    def channel_samples(self) -> np.ndarray:
        """(channels, n): one row per channel (whole snapshots only)."""
        m = self.channels
        n = len(self.samples) // m
        return self.samples[: n * m].reshape(n, m).T

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.channels / self.sample_rate_hz

    @property
    def flag_names(self) -> list[str]:
        return [name for bit, name in wire.FLAG_NAMES.items() if self.flags & bit]


def _tuning(frame: StoredFrame) -> tuple[float, float] | None:
    """(sample rate, centre frequency) from an IQ frame's metadata; None if either is missing
    or not a usable number (the frame cannot be placed in time or frequency)."""
    try:
        rate = float(frame.meta["samp_rate_hz"])
        freq = float(frame.meta["center_freq_hz"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(rate) and rate > 0 and math.isfinite(freq)):
        return None
    return rate, freq


def _channels(meta: dict) -> int:
    try:
        return max(1, int(meta.get("channels", 1)))
    except (TypeError, ValueError):
        return 1


def _break(
    prev: StoredFrame,
    frame: StoredFrame,
    tuning: tuple[float, float],
    prev_tuning: tuple[float, float],
) -> str | None:
    """Why `frame` does not continue the stream that ends with `prev`; None if it does."""
    if frame.seq != prev.seq + 1:
        return f"frames {prev.seq + 1}..{frame.seq - 1} are missing"
    if tuning != prev_tuning:
        return (
            f"frame {frame.seq} is at {tuning[1]:.0f} Hz, {tuning[0]:.0f} S/s "
            f"(was {prev_tuning[1]:.0f} Hz, {prev_tuning[0]:.0f} S/s)"
        )
    channels = _channels(prev.meta)
    if _channels(frame.meta) != channels:
        return f"frame {frame.seq} has {_channels(frame.meta)} channels (was {channels})"
    if frame.flags & wire.FLAG_OVERFLOW:
        return f"samples were dropped before frame {frame.seq}"
    # where the previous frame ended minus where this one starts, whole seconds kept apart
    # so that the fractions are compared at full precision
    step_s = (
        (frame.time_s - prev.time_s)
        + (frame.time_frac - prev.time_frac)
        - len(prev.payload) / channels / prev_tuning[0]
    )
    if abs(step_s) > TIME_TOLERANCE_S:
        return f"frame {frame.seq} starts {step_s:+.9g} s from the end of frame {prev.seq}"
    return None


def join_iq(frames: Iterable[StoredFrame], longest: bool = False) -> IqCapture | None:
    """Join one node's stored IQ frames of one job (any order) into a capture; None if there
    are none. A sequence number stored twice (InfluxDB keeps a re-run's frames beside the
    first run's) counts once, the earlier frame. The capture is the stream up to its first
    break (missing frames, a retune, samples dropped, a time jump); with `longest`, the
    longest unbroken run instead, with its own time (after an overflow: the re-anchored
    rx_time of the sample that follows the gap)."""
    frames = sorted(
        (f for f in frames if f.frame_type == wire.IQ), key=lambda f: (f.seq, f.time_s, f.time_frac)
    )
    usable: list[tuple[StoredFrame, tuple[float, float]]] = []
    unusable = 0
    for f in frames:
        if usable and usable[-1][0].seq == f.seq:
            continue
        tuning = _tuning(f)
        if tuning is None:
            unusable += 1
            continue
        usable.append((f, tuning))
    if unusable:
        first = frames[0]
        log.warning(
            "job %s, node %s: %d IQ frames without a usable samp_rate_hz and "
            "center_freq_hz in their metadata left out",
            first.job_id,
            first.node_id,
            unusable,
        )
    if not usable:
        return None
    first, tuning = usable[0]
    complete = first.seq == 0
    if not complete:
        log.info(
            "job %s, node %s: IQ frames 0..%d are missing: the capture starts at frame %d",
            first.job_id,
            first.node_id,
            first.seq - 1,
            first.seq,
        )
    runs = [[first]]
    run_tuning = tuning
    for frame, frame_tuning in usable[1:]:
        reason = _break(runs[-1][-1], frame, frame_tuning, run_tuning)
        if reason is not None:
            log.info(
                "job %s, node %s: the IQ capture %s after frame %d: %s",
                first.job_id,
                first.node_id,
                "breaks" if longest else "stops",
                runs[-1][-1].seq,
                reason,
            )
            complete = False
            if not longest:
                break
            runs.append([])
            run_tuning = frame_tuning
        runs[-1].append(frame)
    joined = max(runs, key=lambda run: sum(len(f.payload) for f in run))  # first of the longest
    first = joined[0]
    tuning = _tuning(first)
    flags = 0
    for frame in joined:
        flags |= frame.flags
    samples = np.concatenate([np.asarray(f.payload, dtype=np.complex64) for f in joined])
    return IqCapture(
        job_id=first.job_id,
        node_id=first.node_id,
        samples=samples,
        sample_rate_hz=tuning[0],
        center_freq_hz=tuning[1],
        time_s=int(first.time_s),
        time_frac=float(first.time_frac),
        time_uncertainty_s=float(first.time_uncertainty_s),
        meta=dict(first.meta),
        frames=len(joined),
        flags=flags,
        complete=complete,
    )
