"""dispatch catalogue limits, handling clocks, accountability, extensions

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.add_column(
            sa.Column("handling_days", sa.Integer(), nullable=False, server_default="13")
        )
    # The catalogue's usual limits: consultations 3 working days, the rest 13.
    op.execute("UPDATE category SET handling_days = 3 WHERE name LIKE '%咨询%'")
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("handle_by", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("accepted_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("response_overdue", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("handling_overdue", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("supervised_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reply", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_case_record_merged_into", "case_record", ["merged_into_id"], ["id"]
        )
        batch.create_index("ix_case_record_handle_by", ["handle_by"])
    op.create_table(
        "case_assist",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), primary_key=True),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), primary_key=True),
    )
    op.create_table(
        "overdue_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=True),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late_s", sa.Integer(), nullable=False),
    )
    op.create_index("ix_overdue_record_case_id", "overdue_record", ["case_id"])
    op.create_index("ix_overdue_record_department_id", "overdue_record", ["department_id"])
    op.create_index("ux_overdue_case_kind", "overdue_record", ["case_id", "kind"], unique=True)
    op.create_table(
        "extension_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_extension_request_case_id", "extension_request", ["case_id"])


def downgrade() -> None:
    op.drop_table("extension_request")
    op.drop_table("overdue_record")
    op.drop_table("case_assist")
    with op.batch_alter_table("case_record") as batch:
        batch.drop_index("ix_case_record_handle_by")
        batch.drop_constraint("fk_case_record_merged_into", type_="foreignkey")
        for column in (
            "merged_into_id",
            "reply",
            "supervised_note",
            "handling_overdue",
            "response_overdue",
            "on_site_at",
            "accepted_by",
            "handle_by",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("category") as batch:
        batch.drop_column("handling_days")
