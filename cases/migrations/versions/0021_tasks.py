"""online, SMS and Open311 requests as tasks for the operators' queue (issue 21)

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_task",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=False),
        sa.Column("case_number", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_by", sa.String(64), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_by", sa.String(64), nullable=True),
        sa.Column("first_response_s", sa.Float(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(64), nullable=True),
        sa.UniqueConstraint("case_id"),
        sa.UniqueConstraint("case_number"),
    )
    op.create_index("ix_channel_task_submitted_at", "channel_task", ["submitted_at"])
    op.create_index("ix_channel_task_open", "channel_task", ["completed_at", "submitted_at"])


def downgrade() -> None:
    op.drop_table("channel_task")
