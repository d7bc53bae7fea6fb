"""GET /metrics: Prometheus exposition of the coordinator's and the collector's metrics.

Counters (jobs finished, allocation failures, frames received, stored, lost, spooled, PSD bins)
count what this process did; gauges of jobs by status, online nodes and the online nodes'
devices (their latest heartbeat's metrics and calibration age) are read from the database at
scrape time, so every replica reports the same totals. Scrapers authenticate with a
viewer's bearer token or API key, or with ``DRIFT_METRICS_TOKEN`` as a bearer token.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from drift.api.deps import ReadSessionDep, RuntimeDep, authenticate, has_role
from drift.api.hub import device_label
from drift.orchestrator import job_service, metrics, node_service
from drift.orchestrator.registry import JOB_TYPES
from drift.orchestrator.states import JobStatus, Role

router = APIRouter(tags=["metrics"])


def _authorized(request: Request, runtime, authorization: str | None, api_key: str | None) -> None:
    token = runtime.settings.metrics_token
    if (
        token is not None
        and authorization is not None
        and hmac.compare_digest(
            authorization.encode(), f"Bearer {token.get_secret_value()}".encode()
        )
    ):
        return
    bearer = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
    user = authenticate(runtime, bearer, api_key)
    if not has_role(user, Role.VIEWER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "needs the viewer role")


def _device_gauges(devices: list[node_service.DeviceState]) -> None:
    """Per-device gauges from the online nodes' latest heartbeats: set afresh at every scrape,
    so a node that went offline (or a value a device stopped reporting) leaves no stale
    series."""
    gauges = [g for g, _ in metrics.DEVICE_GAUGES] + [metrics.device_calibration_age]
    for g in gauges:
        g.clear()
    now = dt.datetime.now(dt.UTC)
    for d in devices:
        labels = (str(d.node_id), device_label(d.driver, d.serial))
        for gauge, field in metrics.DEVICE_GAUGES:
            value = d.metrics.get(field)
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                gauge.labels(*labels).set(value)
        if d.last_calibrated is not None:
            made = d.last_calibrated
            made = made if made.tzinfo else made.replace(tzinfo=dt.UTC)
            metrics.device_calibration_age.labels(*labels).set((now - made).total_seconds())


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {"description": "no or wrong credentials"},
    },
)
def prometheus_metrics(
    request: Request,
    runtime: RuntimeDep,
    session: ReadSessionDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Prometheus text format."""
    _authorized(request, runtime, authorization, x_api_key)
    seen = job_service.counts_by_status_and_type(session)
    for jt in set(JOB_TYPES) | {t for _, t in seen}:
        for st in JobStatus:
            metrics.jobs_by_status.labels(str(st), jt).set(seen.get((str(st), jt), 0))
    metrics.active_nodes.set(node_service.online_count(session))
    _device_gauges(node_service.online_devices(session))
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
