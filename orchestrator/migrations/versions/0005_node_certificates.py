"""Node certificates: the serial and expiry of each node's current certificate (the only one
the coordinator accepts from it), and when an admin revoked the node.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("cert_serial", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f("ix_nodes_cert_serial"), ["cert_serial"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_index(batch.f("ix_nodes_cert_serial"))
        batch.drop_column("revoked_at")
        batch.drop_column("cert_not_after")
        batch.drop_column("cert_serial")
