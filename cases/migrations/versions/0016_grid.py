"""the grid hierarchy: streets, communities, grids, grid workers, the address table,
photos and patrol reports (issue 20)

Revision ID: 0016
Revises: 0015
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
