"""GET /jobs/{job_id}/result: what a job's analysis made of its nodes' deliveries."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from drift.api.deps import ReadSessionDep, Viewer
from drift.orchestrator.analysis.records import NoResult, read_result
from drift.orchestrator.analysis.results import JobResultBody, to_geojson

router = APIRouter(prefix="/jobs", tags=["results"])

GEOJSON_MEDIA_TYPE = "application/geo+json"


@router.get(
    "/{job_id}/result",
    response_model=JobResultBody,
    responses={
        200: {
            "content": {GEOJSON_MEDIA_TYPE: {}},
            "description": "the result (JSON), or with format=geojson a FeatureCollection",
        },
        404: {
            "description": "no such job, or no result yet: the detail says why (pending, "
            "running, analysing, failed with its reason)"
        },
        422: {"description": "format=geojson for a result with no place on a map"},
    },
)
def get_result(
    job_id: uuid.UUID,
    _: Viewer,
    session: ReadSessionDep,
    format: Annotated[
        Literal["json", "geojson"],
        Query(
            description="geojson: a FeatureCollection (the fix as a Point, its 95 % ellipse as a "
            "Polygon, each node as a Point) for QGIS, Leaflet and other GIS tools"
        ),
    ] = "json",
):
    """A job's result: for direction finding, the position with its 95 % ellipse, covariance,
    fit quality, each node's capture and each measurement; for a scan, its signals merged
    across nodes; for a custom flowgraph, what each node delivered."""
    try:
        result = read_result(session, job_id)
    except NoResult as exc:
        raise HTTPException(404, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    if format == "geojson":
        try:
            body = to_geojson(result)
        except ValueError as exc:
            raise HTTPException(422, f"format=geojson: {exc}") from None
        return JSONResponse(body, media_type=GEOJSON_MEDIA_TYPE)
    return result
