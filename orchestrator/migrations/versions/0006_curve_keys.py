"""Nodes' CurveZMQ public keys (the data plane's identities), and an index on when jobs
ended (the collector reads the jobs that are running or ended a short while ago).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("curve_public_key", sa.String(length=40), nullable=True))
        batch.create_unique_constraint(op.f("uq_nodes_curve_public_key"), ["curve_public_key"])
    op.create_index(op.f("ix_jobs_finished_at"), "jobs", ["finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_finished_at"), table_name="jobs")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_constraint(op.f("uq_nodes_curve_public_key"), type_="unique")
        batch.drop_column("curve_public_key")
