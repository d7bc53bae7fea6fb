"""Revision 0004 on a database with data in it: users keep working (credentials version 0),
and templates approved before it get their expression lists and transmitting blocks from
their content and lose their approval, so an admin approves them again seeing what they
run."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql

from drift.orchestrator.migrations import downgrade, upgrade
from drift.orchestrator.storage import make_engine

ROOT = Path(__file__).resolve().parents[2]
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
WHEN = sa.DateTime(timezone=True)
USERS = sa.table(
    "users",
    *[sa.column(n, t) for n, t in [("id", sa.Uuid()), ("username", sa.String())]],
    *[sa.column(n, t) for n, t in [("password_hash", sa.String()), ("role", sa.String())]],
    sa.column("permissions", JSON_DOC),
    sa.column("disabled", sa.Boolean()),
    sa.column("created_at", WHEN),
)
TEMPLATES = sa.table(
    "flowgraph_templates",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("sha256", sa.String()),
    sa.column("content", sa.Text()),
    sa.column("parameters", JSON_DOC),
    sa.column("embedded_code", JSON_DOC),
    sa.column("uploaded_at", WHEN),
    sa.column("approved_at", WHEN),
    sa.column("approved_by", sa.Uuid()),
)


def test_stored_templates_are_described_and_need_approval_again(db_url: str):
    doc = yaml.safe_load((ROOT / "flowgraphs" / "iq_capture.grc").read_text())
    doc["blocks"].append(
        {
            "name": "pwn",
            "id": "variable",
            "parameters": {"comment": "", "value": "__import__('os').getcwd()"},
            "states": {"state": "enabled"},
        }
    )
    doc["blocks"].append({"name": "tx", "id": "osmosdr_sink", "parameters": {}, "states": {}})
    content = yaml.safe_dump(doc)
    downgrade(db_url, "0003")
    engine = make_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as conn:
            admin = uuid.uuid4()
            conn.execute(
                USERS.insert().values(
                    id=admin,
                    username="old-admin",
                    password_hash="x",
                    role="admin",
                    permissions=[],
                    disabled=False,
                    created_at=now,
                )
            )
            conn.execute(
                TEMPLATES.insert().values(
                    id=uuid.uuid4(),
                    name="old",
                    sha256="0" * 64,
                    content=content,
                    parameters=[],
                    embedded_code=[],
                    uploaded_at=now,
                    approved_at=now,
                    approved_by=admin,
                )
            )
        upgrade(db_url)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT credentials_version FROM users")).scalar_one()
            row = (
                conn.execute(
                    sa.select(
                        TEMPLATES.c.approved_at,
                        TEMPLATES.c.approved_by,
                        sa.column("expressions", JSON_DOC),
                        sa.column("transmit_blocks", JSON_DOC),
                    ).select_from(TEMPLATES)
                )
                .mappings()
                .one()
            )
    finally:
        engine.dispose()
    assert version == 0
    assert row["approved_at"] is None and row["approved_by"] is None
    assert row["transmit_blocks"] == ["tx"]
    codes = {(e["block"], e["parameter"]): e["code"] for e in row["expressions"]}
    assert codes[("pwn", "value")] == "__import__('os').getcwd()"
