"""cases a citizen's request shown on the Open311 list, and SMS fixes (issue 21)

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A phone, SMS or web case a supervisor marked public is listed on Open311 too.
    # (The SMS fixes need no schema: replies are keyed in sms_message.source.)
    op.add_column(
        "case_record",
        sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("case_record") as table:
        table.drop_column("public")
