"""One router per resource, gathered under /api/v1."""

from fastapi import APIRouter

from drift.api.routes import (
    api_keys,
    auth,
    channel,
    detections,
    flowgraphs,
    iq,
    jobs,
    live,
    nodes,
    results,
    spectrum,
    users,
)

api_router = APIRouter(prefix="/api/v1")
for module in (
    auth,
    users,
    api_keys,
    jobs,
    results,
    iq,
    detections,
    nodes,
    channel,
    flowgraphs,
    spectrum,
    live,
):
    api_router.include_router(module.router)
