"""the outbound dialer's work list, the opt-out register, return-visit answers

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
    with op.batch_alter_table("call_record") as batch:
        batch.add_column(sa.Column("called_back_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "outbound_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=160), nullable=False, unique=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_result", sa.String(length=16), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("live_call", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbound_item_next_at", "outbound_item", ["next_at"])
    op.create_index("ix_outbound_item_status", "outbound_item", ["status"])
    op.create_table(
        "opt_out",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phone", sa.String(length=32), nullable=False, unique=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("opt_out")
    op.drop_index("ix_outbound_item_status", table_name="outbound_item")
    op.drop_index("ix_outbound_item_next_at", table_name="outbound_item")
    op.drop_table("outbound_item")
    with op.batch_alter_table("call_record") as batch:
        batch.drop_column("called_back_at")
    with op.batch_alter_table("case_record") as batch:
        batch.drop_column("satisfaction")
