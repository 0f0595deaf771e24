"""call recordings: each conversation's recording, linked to its call detail row and
its case, kept until the retention job deletes it

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_recording",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("media_url", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("sid"),
    )
    op.create_index("ix_call_recording_call_id", "call_recording", ["call_id"])
    op.create_index("ix_call_recording_case_id", "call_recording", ["case_id"])
    op.create_index("ix_call_recording_started_at", "call_recording", ["started_at"])


def downgrade() -> None:
    op.drop_table("call_recording")
