"""Open311 GeoReport v2: API keys, their audit, and requests' locations (issue 21)

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("case_record", sa.Column("latitude", sa.Float(), nullable=True))
    op.add_column("case_record", sa.Column("longitude", sa.Float(), nullable=True))
    op.add_column(
        "category",
        sa.Column("open311_direct", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "open311_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("app_name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "open311_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token", sa.String(40), nullable=False),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("open311_key.id"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_code", sa.String(48), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False, server_default=""),
        sa.UniqueConstraint("token"),
        sa.UniqueConstraint("case_id"),
    )
    op.create_table(
        "open311_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("open311_key.id"), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_open311_audit_at", "open311_audit", ["at"])
    op.create_index("ix_open311_audit_key_id", "open311_audit", ["key_id"])


def downgrade() -> None:
    op.drop_table("open311_audit")
    op.drop_table("open311_request")
    op.drop_table("open311_key")
    with op.batch_alter_table("category") as table:
        table.drop_column("open311_direct")
    with op.batch_alter_table("case_record") as table:
        table.drop_column("longitude")
        table.drop_column("latitude")
