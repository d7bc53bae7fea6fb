"""A job's detections: read from the time-series store, and merged across nodes.

A node's flowgraph publishes one detection frame per detector event (docs/wire-format.md): "new"
when a signal is confirmed, "end" when it is gone or the scan is over, each with the signal's
centre, occupied bandwidth, powers, SNR and the times it was first and last seen.
:func:`detections_from_store` turns a job's frames into one :class:`NodeDetection` per signal a
node tracked (its latest event: the "end" when there is one, which holds the whole track);
``GET /api/v1/jobs/{id}/detections`` serves them, and a scan's analysis merges them with
:func:`merge_detections` into signals seen by several nodes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Sequence
from typing import Literal

from gnuradio.drift import wire
from pydantic import BaseModel, Field

from drift.orchestrator.spectrum_store import StoredFrame
from drift.orchestrator.timeseries import TimeSeriesStore

log = logging.getLogger("drift.orchestrator.detections")

#: the fields of a detection frame's payload entries (drift.Detection, plus event)
_REQUIRED = (
    "id",
    "event",
    "center_freq_hz",
    "bandwidth_hz",
    "peak_psd_db",
    "power_db",
    "snr_db",
    "noise_db",
    "first_seen_s",
    "last_seen_s",
)
_EVENTS = ("new", "end")


def _utc(unix_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC)


class NodeDetection(BaseModel):
    """One signal as one node's detector tracked it. Levels are dBm and dBm/Hz at the antenna
    when the node is calibrated; `units` is "dBFS" (and the values dBFS, dBFS/Hz) when its
    frames are flagged uncalibrated."""

    node_id: str
    #: the detector's id of the track (unique within one run of the node's flowgraph)
    detection_id: int
    #: the latest event: "new" (confirmed, and still on when last reported) or "end"
    event: Literal["new", "end"]
    #: when the node reported that event (its frame's time)
    time: dt.datetime
    #: sequence number of that frame in the node's detection stream
    seq: int
    center_freq_hz: float
    #: 99 % occupied bandwidth
    bandwidth_hz: float
    #: power integrated over the band, noise removed
    power_dbm: float
    #: the highest bin's power density
    peak_psd_dbm_hz: float
    #: the peak bin over the local noise floor
    snr_db: float
    #: the local noise density under the signal
    noise_dbm_hz: float
    #: the time of the first and the last sweep (spectrum) it was seen in
    first_seen: dt.datetime
    last_seen: dt.datetime
    #: sweeps (spectra) it was seen in
    frames: int = Field(ge=1)
    #: the node's PSD bin width, when its frame says
    bin_hz: float | None = None
    #: 1-sigma uncertainty of the node's clock (the times above)
    time_uncertainty_s: float = 0.0
    units: Literal["dBm", "dBFS"] = "dBm"
    #: the frame's flags: "overflow", "uncalibrated", "clipped"
    flags: list[str] = Field(default_factory=list)

    @property
    def low_freq_hz(self) -> float:
        return self.center_freq_hz - self.bandwidth_hz / 2

    @property
    def high_freq_hz(self) -> float:
        return self.center_freq_hz + self.bandwidth_hz / 2

    @property
    def calibrated(self) -> bool:
        return self.units == "dBm"


def _parse(frame: StoredFrame, entry: dict) -> NodeDetection | None:
    """One payload entry of a stored detection frame; None (logged) when it is malformed."""
    try:
        values = {k: entry[k] for k in _REQUIRED}
        numbers = [float(values[k]) for k in _REQUIRED[2:]]
        if not all(math.isfinite(v) for v in numbers) or values["event"] not in _EVENTS:
            raise ValueError("a value is not finite, or the event is unknown")
        return NodeDetection(
            node_id=frame.node_id,
            detection_id=int(values["id"]),
            event=values["event"],
            time=_utc(frame.time),
            seq=frame.seq,
            center_freq_hz=values["center_freq_hz"],
            bandwidth_hz=values["bandwidth_hz"],
            power_dbm=values["power_db"],
            peak_psd_dbm_hz=values["peak_psd_db"],
            snr_db=values["snr_db"],
            noise_dbm_hz=values["noise_db"],
            first_seen=_utc(float(values["first_seen_s"])),
            last_seen=_utc(float(values["last_seen_s"])),
            frames=int(entry.get("frames", 1)),
            bin_hz=frame.bin_hz,
            time_uncertainty_s=frame.time_uncertainty_s,
            units="dBFS" if frame.flags & wire.FLAG_UNCALIBRATED else "dBm",
            flags=[name for bit, name in wire.FLAG_NAMES.items() if frame.flags & bit],
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning(
            "job %s node %s: detection frame %d has a malformed entry (%s); skipped",
            frame.job_id,
            frame.node_id,
            frame.seq,
            exc,
        )
        return None


def detections_from_store(
    store: TimeSeriesStore, job_id: str, node_id: str | None = None
) -> list[NodeDetection]:
    """The signals each node of a job detected: one per node and track, its latest event
    (the "end" event holds the whole track; a "new" one alone is a signal still on when the
    node last reported). Ordered by first seen, node and frequency. `node_id`: one node's.

    Reads the job's detection frames from any time-series backend; raises what the store
    raises (StoreUnavailable while it cannot be reached)."""
    tracks: dict[tuple, NodeDetection] = {}
    for frame in store.query(str(job_id), node_id, frame_type=wire.DETECTION):
        try:
            entries = json.loads(bytes(frame.payload))
        except (UnicodeDecodeError, ValueError):
            log.warning(
                "job %s node %s: detection frame %d is not JSON; skipped",
                frame.job_id,
                frame.node_id,
                frame.seq,
            )
            continue
        for entry in entries if isinstance(entries, list) else []:
            det = _parse(frame, entry) if isinstance(entry, dict) else None
            if det is None:
                continue
            # a run of a node's flowgraph numbers its tracks from 1: the first sighting's time
            # tells two runs' tracks apart; within a run, a track's later frame is its later event
            key = (det.node_id, det.detection_id, det.first_seen)
            held = tracks.get(key)
            if held is None or det.seq > held.seq:
                tracks[key] = det
    return sorted(tracks.values(), key=lambda d: (d.first_seen, d.node_id, d.center_freq_hz))


class Sighting(BaseModel):
    """What one node saw of a signal. When the node tracked it more than once (a bursty
    signal with gaps longer than the detector's hold), its strongest track (highest SNR) gives
    the frequency, bandwidth and levels, and the times span all of them."""

    node_id: str
    center_freq_hz: float
    bandwidth_hz: float
    power_dbm: float
    snr_db: float
    first_seen: dt.datetime
    last_seen: dt.datetime
    #: False when the node is uncalibrated: power_dbm is then dBFS
    calibrated: bool = True


class MergedSignal(BaseModel):
    """One signal, as seen by every node that detected it (one sighting per node). Its
    centre and bandwidth are those of the sighting with the highest SNR."""

    center_freq_hz: float
    bandwidth_hz: float
    #: the strongest calibrated sighting's power; None when no sighting is calibrated
    max_power_dbm: float | None
    sightings: list[Sighting]


def _sighting(dets: list[NodeDetection]) -> Sighting:
    best = max(dets, key=lambda d: d.snr_db)
    return Sighting(
        node_id=best.node_id,
        center_freq_hz=best.center_freq_hz,
        bandwidth_hz=best.bandwidth_hz,
        power_dbm=best.power_dbm,
        snr_db=best.snr_db,
        first_seen=min(d.first_seen for d in dets),
        last_seen=max(d.last_seen for d in dets),
        calibrated=best.calibrated,
    )


def merge_detections(detections: Sequence[NodeDetection], bin_hz: float) -> list[MergedSignal]:
    """Detections of several nodes -> signals, each with one sighting per node that saw it.

    Two detections are the same signal when their bands (centre +- half the occupied
    bandwidth) overlap or lie within `bin_hz` of each other, and sameness is transitive: the
    signals are the connected groups of overlapping bands (so a detection whose band spans
    two others joins them). Time plays no part: a scan's signal seen at different moments is
    one signal. `bin_hz`: the scan's frequency resolution (the widest bin of the nodes' PSDs).
    Signals are ordered by frequency, sightings by node.
    """
    if not (math.isfinite(bin_hz) and bin_hz > 0):
        raise ValueError(f"bin_hz must be > 0, got {bin_hz}")
    groups: list[list[NodeDetection]] = []
    reach_hz = -math.inf  # the highest band edge of the group being gathered
    for det in sorted(detections, key=lambda d: (d.low_freq_hz, d.high_freq_hz, d.node_id)):
        if groups and det.low_freq_hz <= reach_hz + bin_hz:
            groups[-1].append(det)
            reach_hz = max(reach_hz, det.high_freq_hz)
        else:
            groups.append([det])
            reach_hz = det.high_freq_hz
    signals = []
    for group in groups:
        by_node: dict[str, list[NodeDetection]] = {}
        for det in group:
            by_node.setdefault(det.node_id, []).append(det)
        sightings = [_sighting(by_node[node]) for node in sorted(by_node)]
        best = max(sightings, key=lambda s: s.snr_db)
        calibrated = [s.power_dbm for s in sightings if s.calibrated]
        signals.append(
            MergedSignal(
                center_freq_hz=best.center_freq_hz,
                bandwidth_hz=best.bandwidth_hz,
                max_power_dbm=max(calibrated) if calibrated else None,
                sightings=sightings,
            )
        )
    signals.sort(key=lambda s: s.center_freq_hz)
    return signals
