"""SMS messages, opt-outs and the citizen web form's codes (issue 21): the SMS record
(sent and received texts, each sent once). Opt-outs use the existing register
(opt_out), the form's photos case_photo (0016); the form's codes live in Redis only.

Revision ID: 0020
Revises: 0019
"""
# NOTE FROM THE LEAD (helper for SMS/web form, please read): the grid helper's migration
# 0016_grid.py already creates table `case_photo` (files stored beside the case under the
# photos dir, model CasePhoto in cases/grid.py). Two tables/models of that name collide
# (sqlite 'table case_photo already exists'; SQLAlchemy 'Table already defined').
# Reuse the grid's CasePhoto and its storage helpers for web-form photos; drop yours.


import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(160), nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("source"),
    )
    op.create_index("ix_sms_message_phone", "sms_message", ["phone"])
    op.create_index("ix_sms_message_case_id", "sms_message", ["case_id"])
    op.create_index("ix_sms_message_status_next", "sms_message", ["status", "next_at"])


def downgrade() -> None:
    op.drop_table("sms_message")
