"""Coordinator, node agent, storage and scheduling (drift.orchestrator)."""
