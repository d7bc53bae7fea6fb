"""REST API and WebSocket (drift.api)."""
