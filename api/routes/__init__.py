"""One router per resource, gathered under /api/v1."""

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
from fastapi import APIRouter

api_router = APIRouter(prefix="/api/v1")
for module in (auth, users, api_keys, jobs, results, iq, detections, nodes, channel, flowgraphs,
               spectrum, live):
    api_router.include_router(module.router)
