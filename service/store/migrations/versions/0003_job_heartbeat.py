"""audit_jobs.heartbeat_at: a running job's worker stamps it, so orphaned jobs can be told apart.

Revision ID: 0003_job_heartbeat
Revises: 0002_audit_log_append_only
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_job_heartbeat"
down_revision = "0002_audit_log_append_only"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_jobs") as batch:
        batch.drop_column("heartbeat_at")
