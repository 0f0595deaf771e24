"""the duty leaders' monthly roster, instructions (批示) on cases, and the kept reports (issue 20)

Revision ID: 0017
Revises: 0016
"""

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
