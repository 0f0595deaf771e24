"""call detail rows name the operator who answered (their own day follows them, not
the seat)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("call_record", sa.Column("operator", sa.String(64), nullable=True))
    op.create_index("ix_call_record_operator", "call_record", ["operator"])


def downgrade() -> None:
    op.drop_index("ix_call_record_operator", table_name="call_record")
    op.drop_column("call_record", "operator")
