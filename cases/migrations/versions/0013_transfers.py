"""transfers: a case handed to an emergency line (紧急转办) and the call detail row of a
call the operator handed on say where it went

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("handling", sa.String(24), nullable=True))
        batch.add_column(sa.Column("transferred_to", sa.String(32), nullable=True))
    with op.batch_alter_table("call_record") as batch:
        batch.add_column(sa.Column("transfer_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("transferred_to", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_record") as batch:
        batch.drop_column("transferred_to")
        batch.drop_column("transfer_kind")
    with op.batch_alter_table("case_record") as batch:
        batch.drop_column("transferred_to")
        batch.drop_column("handling")
