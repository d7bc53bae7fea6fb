"""The analysis of ``spectrum_scan`` jobs: the nodes' detections merged into signals.

Each node's flowgraph detects on its own sweeps and sends its detections as frames; here they
are read back from the time-series store (:func:`drift.orchestrator.detections
.detections_from_store`) and merged across nodes (:func:`merge_detections`): one signal seen by
three nodes is one entry with three sightings. The spectrum itself stays in the store, served
by ``GET /spectrum/{job_id}``.
"""

from __future__ import annotations

from collections import Counter

from drift.orchestrator.analysis.base import AnalysisInput
from drift.orchestrator.analysis.results import GeoPosition, ScanNode, ScanResult
from drift.orchestrator.detections import detections_from_store, merge_detections
from drift.orchestrator.jobs import SpectrumScanJob


def analyse_scan(job: AnalysisInput, store) -> ScanResult:
    spec = SpectrumScanJob.model_validate({**job.parameters, "type": "spectrum_scan"})
    detections = detections_from_store(store, job.job_id)
    bins = [d.bin_hz for d in detections if d.bin_hz]
    bin_hz = max(bins) if bins else spec.bin_hz
    per_node = Counter(d.node_id for d in detections)
    return ScanResult(
        job_id=job.job_id,
        start_freq_hz=spec.start_freq_hz,
        stop_freq_hz=spec.stop_freq_hz,
        bin_hz=bin_hz,
        signals=merge_detections(detections, bin_hz),
        nodes=[
            ScanNode(
                node_id=d.node_id,
                name=d.name,
                position=GeoPosition(lat_deg=d.lat_deg, lon_deg=d.lon_deg, alt_m=d.alt_m),
                state=d.state,
                psd_frames=d.frames_sent.get("psd", 0),
                detections=per_node.get(d.node_id, 0),
            )
            for d in job.deliveries
        ],
    )
