"""the dialer plans from cursors (high-water marks, and indexes on the times it reads
from); the opt-out register keeps a note

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dial_cursor",
        sa.Column("source", sa.String(length=32), primary_key=True),
        sa.Column("mark", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_record_resolved_at", "case_record", ["resolved_at"])
    op.create_index("ix_call_record_ended_at", "call_record", ["ended_at"])
    op.create_index("ix_callback_request_requested_at", "callback_request", ["requested_at"])
    with op.batch_alter_table("opt_out") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("opt_out") as batch:
        batch.drop_column("note")
    op.drop_index("ix_callback_request_requested_at", table_name="callback_request")
    op.drop_index("ix_call_record_ended_at", table_name="call_record")
    op.drop_index("ix_case_record_resolved_at", table_name="case_record")
    op.drop_table("dial_cursor")
