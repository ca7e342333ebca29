"""Monitoring tables: monitors, monitor_windows (owned by service.monitoring.store).

Revision ID: 0101_monitoring
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101_monitoring"
down_revision = None
branch_labels = ("monitoring",)
depends_on = "0001_core"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(40), sa.ForeignKey("organisations.id"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("profile", sa.Text, nullable=True),
        sa.Column("profile_sha256", sa.String(64), nullable=True),
        sa.Column("reference_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_monitor_name"),
    )
    op.create_index("ix_monitors_org_id", "monitors", ["org_id"])
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("monitor_id", sa.String(40), sa.ForeignKey("monitors.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("scores_path", sa.String(1000), nullable=True),
        sa.Column("alert_status", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("labels_at", TS, nullable=True),
        sa.UniqueConstraint("monitor_id", "source_sha256", name="uq_window_source"),
    )
    op.create_index("ix_monitor_windows_monitor_id", "monitor_windows", ["monitor_id"])


def downgrade() -> None:
    op.drop_index("ix_monitor_windows_monitor_id", table_name="monitor_windows")
    op.drop_table("monitor_windows")
    op.drop_index("ix_monitors_org_id", table_name="monitors")
    op.drop_table("monitors")
