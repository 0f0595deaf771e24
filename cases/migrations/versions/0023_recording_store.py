"""where a recording is stored (a directory or an S3-compatible store) (issue 19)

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_recording") as batch:
        batch.add_column(sa.Column("store", sa.String(8), nullable=True))
        batch.add_column(sa.Column("store_key", sa.String(512), nullable=True))
        batch.create_index("ix_call_recording_store", ["store"])
    # Every recording so far is a file in the recordings directory.
    op.execute(
        "UPDATE call_recording SET store = 'dir', store_key = file_name"
        " WHERE file_name IS NOT NULL AND status <> 'deleted'"
    )


def downgrade() -> None:
    with op.batch_alter_table("call_recording") as batch:
        batch.drop_index("ix_call_recording_store")
        batch.drop_column("store_key")
        batch.drop_column("store")
