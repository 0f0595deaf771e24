"""call detail records and stream cursors

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_record",
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("seat", sa.String(length=32), nullable=True),
        sa.Column("wait_ms", sa.Integer(), nullable=True),
        sa.Column("talk_ms", sa.Integer(), nullable=True),
        sa.Column("wrapup_ms", sa.Integer(), nullable=True),
        sa.Column("ring_no_answers", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index("ix_call_record_queued_at", "call_record", ["queued_at"])
    op.create_index("ix_call_record_outcome", "call_record", ["outcome"])
    op.create_index("ix_call_record_seat", "call_record", ["seat"])
    op.create_table(
        "stream_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("stream_cursor")
    op.drop_index("ix_call_record_seat", table_name="call_record")
    op.drop_index("ix_call_record_outcome", table_name="call_record")
    op.drop_index("ix_call_record_queued_at", table_name="call_record")
    op.drop_table("call_record")
