"""calls attached to an open case (urging, 催办)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_event") as batch:
        batch.add_column(sa.Column("call_id", sa.String(length=128), nullable=True))
        batch.create_unique_constraint("uq_case_event_call_id", ["call_id"])


def downgrade() -> None:
    with op.batch_alter_table("case_event") as batch:
        batch.drop_constraint("uq_case_event_call_id", type_="unique")
        batch.drop_column("call_id")
