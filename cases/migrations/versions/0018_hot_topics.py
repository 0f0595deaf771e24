"""hot topics, special topics (专题) and their case links (issue 20)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The scan reads cases by time window each minute; suggestions by category and time.
    op.create_index("ix_case_created", "case_record", ["created_at"])
    op.create_index("ix_case_category_created", "case_record", ["category_id", "created_at"])
    op.create_table(
        "hot_topic",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("category_code", sa.String(48), nullable=False),
        sa.Column("street", sa.String(64), nullable=False),
        sa.Column("word", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_case_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_hot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("count_at_raise", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("suggested_unit", sa.String(128), nullable=False),
    )
    op.create_index("ix_hot_topic_raised_at", "hot_topic", ["raised_at"])
    op.create_index("ix_hot_topic_closed_at", "hot_topic", ["closed_at"])
    op.create_table(
        "hot_topic_case",
        sa.Column("topic_id", sa.Integer(), sa.ForeignKey("hot_topic.id"), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), primary_key=True),
    )
    op.create_index("ix_hot_topic_case_case", "hot_topic_case", ["case_id"])
    op.create_table(
        "special_topic",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("words", sa.Text(), nullable=False),
        sa.Column("streets", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "special_topic_case",
        sa.Column("topic_id", sa.Integer(), sa.ForeignKey("special_topic.id"), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), primary_key=True),
        sa.Column("how", sa.String(8), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_special_topic_case_case", "special_topic_case", ["case_id"])


def downgrade() -> None:
    op.drop_table("special_topic_case")
    op.drop_table("special_topic")
    op.drop_table("hot_topic_case")
    op.drop_table("hot_topic")
    op.drop_index("ix_case_category_created", table_name="case_record")
    op.drop_index("ix_case_created", table_name="case_record")
