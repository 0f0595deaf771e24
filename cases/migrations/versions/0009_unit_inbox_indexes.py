"""indexes for a unit's inbox and its live check: cases by lead unit and status, and
the cases a unit assists

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_unit_status", "case_record", ["department_id", "status", "updated_at"])
    op.create_index("ix_case_assist_unit", "case_assist", ["department_id"])


def downgrade() -> None:
    op.drop_index("ix_case_assist_unit", table_name="case_assist")
    op.drop_index("ix_case_unit_status", table_name="case_record")
