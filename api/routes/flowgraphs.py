"""Flowgraph templates for ``custom_flowgraph`` jobs: upload (operators), approve (admins), read;
and the node's route to fetch an approved template it has been assigned.

An upload is checked (size, structure, headless Python output, parameter types, blocks known to
GNU Radio Companion) but never run on the coordinator; only an admin's approval makes it runnable,
because a ``.grc`` file is code (its parameter values are Python expressions).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from drift.api.deps import (
    Admin,
    CurrentNode,
    Operator,
    ReadSessionDep,
    SessionDep,
    Viewer,
    field_error,
    utcnow,
)
from drift.orchestrator import templates
from drift.orchestrator.compiler import CompileError

router = APIRouter(tags=["flowgraphs"])

NAME = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class TemplateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: NAME
    #: the .grc file's text (YAML)
    content: str = Field(min_length=1, max_length=1 << 20)


class TemplateParameter(BaseModel):
    name: str
    type: str
    default: Any = None
    label: str


class TemplateExpression(BaseModel):
    block: str = Field(description="the block's name in the flowgraph")
    block_id: str = Field(description="the block's type (variable, import, epy_block, ...)")
    parameter: str
    kind: Literal["import", "source", "snippet", "variable", "expression"]
    code: str = Field(description="the Python, as it will run")
    runs_code: bool = Field(
        description="false only for names, literals and operators on them; calls, "
        "attributes, subscripts, imports and source make it true"
    )


class TemplatePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    sha256: str
    parameters: list[TemplateParameter]
    embedded_code: list[str] = Field(description="blocks with Python source of their own")
    expressions: list[TemplateExpression] = Field(
        description="every piece of Python the flowgraph runs (grcc evaluates it when the "
        "node compiles the template, and the flowgraph when it runs): what an approval "
        "approves"
    )
    transmit_blocks: list[str] = Field(
        description="blocks that make a node transmit; a job running this template needs "
        "the transmit permission"
    )
    uploaded_by: uuid.UUID | None
    uploaded_at: dt.datetime
    approved_by: uuid.UUID | None
    approved_at: dt.datetime | None


class TemplateDetail(TemplatePublic):
    content: str


#: the longest error message an upload gets back (it never grows with the upload)
MAX_ERROR_CHARS = 500


def _short(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."


def _get(session, template_id: uuid.UUID):
    row = templates.get_template(session, template_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such flowgraph template")
    return row


@router.post(
    "/flowgraphs",
    response_model=TemplatePublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the same content was uploaded before"}},
)
def upload_template(body: TemplateUpload, user: Operator, session: SessionDep, response: Response):
    """Upload a .grc template; it can run once an admin approves it."""
    if "\x00" in body.content:
        raise field_error(("body", "content"), "content must not contain NUL characters")
    try:
        row, new = templates.store_upload(session, body.name, body.content, user.id, utcnow())
    except CompileError as exc:
        raise field_error(("body", "content"), _short(str(exc))) from None
    if not new:
        response.status_code = status.HTTP_200_OK
    return row


@router.get("/flowgraphs", response_model=list[TemplatePublic])
def list_templates(_: Viewer, session: ReadSessionDep):
    return templates.list_templates(session)


@router.get(
    "/flowgraphs/{template_id}",
    response_model=TemplateDetail,
    responses={404: {"description": "no such template"}},
)
def get_template(template_id: uuid.UUID, _: Viewer, session: ReadSessionDep):
    return _get(session, template_id)


@router.post(
    "/flowgraphs/{template_id}/approve",
    response_model=TemplatePublic,
    responses={404: {"description": "no such template"}},
)
def approve_template(template_id: uuid.UUID, admin: Admin, session: SessionDep):
    """Make a template runnable by custom_flowgraph jobs (repeating it changes nothing).
    The answer lists every piece of Python the template runs (``expressions``) and the
    blocks that transmit: what the approval covers."""
    row = _get(session, template_id)
    templates.approve(session, row, admin.id, utcnow())
    return row


@router.get(
    "/nodes/{node_id}/flowgraphs/{template_id}",
    response_model=TemplateDetail,
    responses={
        401: {"description": "no or unknown node credential"},
        403: {"description": "not assigned to this node, or not approved"},
        404: {"description": "no such template"},
    },
)
def node_template(template_id: uuid.UUID, node: CurrentNode, session: SessionDep):
    """An approved template that one of this node's assignments runs."""
    row = _get(session, template_id)
    if row.approved_at is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the template is not approved")
    if not templates.assigned_to(session, template_id, node.id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "no assignment of this node runs it")
    return row
