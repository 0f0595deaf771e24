"""the duty leaders' monthly roster, instructions (批示) on cases, and the kept reports (issue 20)

Instructions are case events (action ``instructed``): no table of their own.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duty_roster",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("day"),
    )
    op.create_index("ix_duty_roster_username", "duty_roster", ["username"])
    op.create_table(
        "kept_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_kept_report_generated_at", "kept_report", ["generated_at"])
    op.create_index("ux_kept_report_period", "kept_report", ["kind", "period_start"], unique=True)
    # The duty leader's page of the day lists today's instructions.
    op.create_index("ix_case_event_action_at", "case_event", ["action", "at"])


def downgrade() -> None:
    op.drop_index("ix_case_event_action_at", table_name="case_event")
    op.drop_table("kept_report")
    op.drop_table("duty_roster")
