"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from drift import redaction
from drift.api.hub import NodeHub
from drift.api.limits import BodyLimit, BodyTooLarge
from drift.api.routes import api_router
from drift.api.routes.metrics import router as metrics_router
from drift.api.runtime import Runtime
from drift.orchestrator.settings import Settings
from drift.orchestrator.timeseries import StoreUnavailable

log = logging.getLogger(__name__)

DESCRIPTION = """\
DRIFT coordinator: submit measurement jobs (spectrum scans, direction finding, propagation tests),
follow them through their lifecycle, list the SDR nodes. Nodes enroll, heartbeat and pick up their
assignments here too.

Log in with the OAuth2 password flow (`POST /api/v1/auth/token`) and send
`Authorization: Bearer <token>`, or send a user's API key as `X-API-Key`. Nodes send their
credential as `X-Node-Token`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; the database is opened (and migrated) when the app starts, not here.
    From here on, no log record of this process carries a credential
    (:func:`drift.redaction.install`)."""
    app_settings = settings if settings is not None else Settings()
    redaction.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(Runtime.start, app_settings)
        runtime.hub = NodeHub(runtime)
        runtime.hub.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.hub.close()
            runtime.close()

    app = FastAPI(
        title="DRIFT coordinator",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = app_settings
    app.include_router(api_router)
    app.include_router(metrics_router)
    # bodies are limited before they are read; uploads have a limit of their own
    app.add_middleware(
        BodyLimit,
        max_body_bytes=app_settings.max_body_bytes,
        path_limits={"/api/v1/flowgraphs": app_settings.max_upload_bytes},
    )

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    def healthz() -> dict[str, str]:
        """Liveness; says nothing about nodes or jobs and needs no credentials."""
        return {"status": "ok"}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # name the field and say what is wrong, but do not echo the input: it may hold a
        # password, or NaN, which JSON cannot carry
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        # the rest of the body is never read: the connection closes after the answer
        log.info("%s %s: %s", request.method, request.url.path, exc.detail)
        return JSONResponse(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            content={"detail": exc.detail},
            headers={"Connection": "close"},
        )

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        # the time-series backend is down or refuses us: say so, and when to ask again
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "the time-series store is unavailable; try again later"},
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            content={"detail": "internal error; see the coordinator's log"},
        )

    return app
