"""Job results (what a job's analysis made of its deliveries), the common capture start of
jobs whose nodes capture together, the analysis claim that lets one replica analyse a job,
and the frames a node reports it sent for an assignment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "job_results",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_s", sa.Float(), nullable=False),
        sa.Column("document", JSON_DOC, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_results_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_results")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("capture_start", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("analysis_owner", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("analysis_lease_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("analysis_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("frames_sent", JSON_DOC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("frames_sent")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("analysis_attempts")
        batch.drop_column("analysis_lease_until")
        batch.drop_column("analysis_owner")
        batch.drop_column("capture_start")
    op.drop_table("job_results")
