"""Uploaded flowgraph templates: storing an upload, and checking a ``custom_flowgraph`` job
against its template before it is accepted.

An upload is validated by :func:`drift.orchestrator.compiler.validate_upload` (never executed
here) and stored by content hash; only an admin's approval makes it runnable. A job's
``parameters`` must name parameter blocks of the template, with values of their GRC types; what
the node supplies (device, ids, where frames go) cannot be set by a job.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.orchestrator.compiler import (
    CompileError,
    FlowgraphParameter,
    NodeContext,
    validate_upload,
)
from drift.orchestrator.storage.models import Assignment, FlowgraphTemplate, Job

if TYPE_CHECKING:
    from drift.orchestrator.jobs import JobBase

#: parameters the node fills in; a job cannot override them
NODE_SUPPLIED = frozenset(NodeContext.__dataclass_fields__)


class JobCheckError(ValueError):
    """A job that does not fit what it refers to; `loc` names the field (as in a 422)."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc


def store_upload(
    session: Session, name: str, content: str, user_id: uuid.UUID | None, now: dt.datetime
) -> tuple[FlowgraphTemplate, bool]:
    """Validate and store an upload, committed; the same content again returns the stored one
    (False)."""
    report = validate_upload(content.encode("utf-8"), name)
    existing = session.scalar(
        select(FlowgraphTemplate).where(FlowgraphTemplate.sha256 == report.template.sha256)
    )
    if existing is not None:
        return existing, False
    row = FlowgraphTemplate(
        id=uuid.uuid4(),
        name=name,
        sha256=report.template.sha256,
        content=content,
        parameters=[
            {"name": p.name, "type": p.type, "default": _jsonable(p.default), "label": p.label}
            for p in report.template.parameters.values()
        ],
        embedded_code=list(report.embedded_code),
        expressions=list(report.expressions),
        transmit_blocks=list(report.transmit_blocks),
        uploaded_by=user_id,
        uploaded_at=now,
    )
    session.add(row)
    session.commit()
    return row, True


def _jsonable(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def check_custom_flowgraph(session: Session, job: JobBase) -> JobBase:
    """The job as it is stored: its template must exist and be approved, its parameters must
    be the template's, and it is pinned to the approved content's hash (``template_sha256``,
    which the node checks the bytes it runs against); a hash the client pinned must match."""
    template = session.get(FlowgraphTemplate, job.template_id)  # type: ignore[attr-defined]
    if template is None:
        raise JobCheckError(("body", "template_id"), "no flowgraph template with this id")
    if template.approved_at is None:
        raise JobCheckError(("body", "template_id"), "the template is not approved by an admin yet")
    pinned = job.template_sha256  # type: ignore[attr-defined]
    if pinned is not None and pinned != template.sha256:
        raise JobCheckError(
            ("body", "template_sha256"), "does not match the approved template's content"
        )
    declared = {
        p["name"]: FlowgraphParameter(p["name"], p["type"], p["default"], p["label"])
        for p in template.parameters
    }
    for name, value in job.parameters.items():  # type: ignore[attr-defined]
        loc = ("body", "parameters", name)
        if name in NODE_SUPPLIED:
            raise JobCheckError(loc, f"{name} is set by the node, not by a job")
        if name not in declared:
            raise JobCheckError(
                loc,
                f"the template has no parameter {name!r} "
                f"(it has: {', '.join(sorted(declared)) or 'none'})",
            )
        try:
            declared[name].convert(value)
        except CompileError as exc:
            raise JobCheckError(loc, str(exc)) from None
    return job.model_copy(update={"template_sha256": template.sha256})


def template_transmits(session: Session, job: JobBase) -> bool:
    """Whether a ``custom_flowgraph`` job's template has a block that transmits."""
    template = session.get(FlowgraphTemplate, job.template_id)  # type: ignore[attr-defined]
    return template is not None and bool(template.transmit_blocks)


def get_template(session: Session, template_id: uuid.UUID) -> FlowgraphTemplate | None:
    return session.get(FlowgraphTemplate, template_id)


def list_templates(session: Session) -> list[FlowgraphTemplate]:
    return list(session.scalars(select(FlowgraphTemplate).order_by(FlowgraphTemplate.uploaded_at)))


def approve(
    session: Session, template: FlowgraphTemplate, admin_id: uuid.UUID, now: dt.datetime
) -> None:
    """Make a template runnable (repeating it changes nothing) and commit."""
    if template.approved_at is None:
        template.approved_at, template.approved_by = now, admin_id
        session.commit()


def assigned_to(session: Session, template_id: uuid.UUID, node_id: uuid.UUID) -> bool:
    """Whether one of the node's assignments runs this template."""
    jobs = session.scalars(
        select(Job.parameters)
        .join(Assignment)
        .where(Assignment.node_id == node_id, Job.type == "custom_flowgraph")
    ).all()
    return any(p.get("template_id") == str(template_id) for p in jobs)
