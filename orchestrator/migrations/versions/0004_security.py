"""Security: users' credentials version (bearer tokens issued before a password change, a
disable or a role change are refused), and what an uploaded flowgraph runs (every Python
expression in it, its transmitting blocks).

Templates stored before this revision get their expression lists and transmitting blocks
read from their content here, and lose their approval: an admin approves them again,
this time seeing what they run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-14
"""

import json
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("credentials_version", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("flowgraph_templates") as batch:
        batch.add_column(sa.Column("expressions", JSON_DOC, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("transmit_blocks", JSON_DOC, nullable=False, server_default="[]")
        )
    _describe_stored_templates()


def _describe_stored_templates() -> None:
    """Read what each stored template runs from its content, and withdraw its approval."""
    from drift.orchestrator.compiler import (
        CompileError,
        block_enabled,
        load_grc_yaml,
        python_expressions,
        transmits,
    )

    templates = sa.table(
        "flowgraph_templates",
        sa.column("id", sa.Uuid()),
        sa.column("content", sa.Text()),
        sa.column("expressions", JSON_DOC),
        sa.column("transmit_blocks", JSON_DOC),
        sa.column("approved_at", sa.DateTime(timezone=True)),
        sa.column("approved_by", sa.Uuid()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(templates.c.id, templates.c.content)).all()
    for template_id, content in rows:
        try:
            doc = load_grc_yaml(content.encode("utf-8"))
        except CompileError:
            doc = {}
        blocks = doc.get("blocks") if isinstance(doc, dict) else None
        transmitting = sorted(
            str(b.get("name"))
            for b in (blocks if isinstance(blocks, list) else [])
            if isinstance(b, dict)
            and isinstance(b.get("id"), str)
            and transmits(b["id"])
            and block_enabled(b)
        )
        expressions = python_expressions(doc) if isinstance(doc, dict) else []
        conn.execute(
            sa.update(templates)
            .where(templates.c.id == template_id)
            .values(
                expressions=json.loads(json.dumps(expressions)),
                transmit_blocks=transmitting,
                approved_at=None,
                approved_by=None,
            )
        )
    if rows:
        log.warning(
            "%d uploaded flowgraph template(s) need an admin's approval again, now with the "
            "list of the Python they run",
            len(rows),
        )


def downgrade() -> None:
    with op.batch_alter_table("flowgraph_templates") as batch:
        batch.drop_column("transmit_blocks")
        batch.drop_column("expressions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credentials_version")
