"""The analysis of ``custom_flowgraph`` jobs: what each node delivered.

An uploaded flowgraph's frames mean what its author made them mean, so the result is an
account: the frames each node sent, by type, and those the collector found missing from the
sequence numbers. The frames themselves are served by the spectrum and IQ endpoints.
"""

from __future__ import annotations

from drift.orchestrator.analysis.base import AnalysisInput
from drift.orchestrator.analysis.results import FramesNode, FramesResult


def analyse_frames(job: AnalysisInput, store) -> FramesResult:
    lost: dict[str, int] = {}
    for s in store.stream_stats(job.job_id):
        lost[s["node_id"]] = lost.get(s["node_id"], 0) + int(s["lost"])
    return FramesResult(
        job_id=job.job_id,
        nodes=[
            FramesNode(
                node_id=d.node_id,
                name=d.name,
                state=d.state,
                frames=dict(d.frames_sent),
                lost=lost.get(d.node_id, 0),
            )
            for d in job.deliveries
        ],
    )
