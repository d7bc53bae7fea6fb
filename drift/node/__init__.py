"""The node: ``drift node --config node.yaml``, one per SDR.

agent    the agent: enrolment, heartbeats, assignments run as flowgraph subprocesses, reports
config   node.yaml
relay    the frames of its flowgraphs, spooled to disk and forwarded to the collector
channel  its WebSocket to the coordinator (heartbeats out, assignment lists in)

The node speaks to the coordinator in :mod:`drift.protocol`'s models, and never loads the
coordinator's storage, scheduler or API (docs/architecture.md).
"""
