"""REST API and WebSocket (drift.api).

``create_app(settings)`` builds the FastAPI app; ``serve(argv)`` runs it with the scheduler
(``drift serve``).
"""

from drift.api.app import create_app
from drift.api.server import serve

__all__ = ["create_app", "serve"]
