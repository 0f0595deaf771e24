"""accountability once per dispatch: a re-dispatched case can be late again at its new unit

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ux_overdue_case_kind", table_name="overdue_record")
    op.create_index(
        "ux_overdue_case_kind_due", "overdue_record", ["case_id", "kind", "due_at"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_overdue_case_kind_due", table_name="overdue_record")
    op.create_index("ux_overdue_case_kind", "overdue_record", ["case_id", "kind"], unique=True)
