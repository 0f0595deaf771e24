"""the grid hierarchy: streets, communities, grids, grid workers, the address table,
photos and patrol reports (issue 20)

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grid_street",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("district_id", sa.Integer(), sa.ForeignKey("district.id"), nullable=False),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_grid_street_district_id", "grid_street", ["district_id"])
    op.create_table(
        "grid_community",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("street_id", sa.Integer(), sa.ForeignKey("grid_street.id"), nullable=False),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_grid_community_street_id", "grid_community", ["street_id"])
    op.create_table(
        "grid",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("community_id", sa.Integer(), sa.ForeignKey("grid_community.id"), nullable=False),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_grid_community_id", "grid", ["community_id"])
    op.create_table(
        "grid_member",
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grid.id"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id"), primary_key=True),
    )
    op.create_index("ix_grid_member_user_id", "grid_member", ["user_id"])
    op.create_table(
        "grid_address",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grid.id"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("number_from", sa.Integer(), nullable=True),
        sa.Column("number_to", sa.Integer(), nullable=True),
    )
    op.create_index("ix_grid_address_grid_id", "grid_address", ["grid_id"])
    op.create_index("ix_grid_address_name", "grid_address", ["name"])
    op.create_table(
        "grid_case",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), primary_key=True),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grid.id"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_site_lat", sa.Float(), nullable=True),
        sa.Column("on_site_lon", sa.Float(), nullable=True),
        sa.Column("on_site_accuracy_m", sa.Float(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_to", sa.String(48), nullable=True),
    )
    op.create_index("ix_grid_case_grid_id", "grid_case", ["grid_id"])
    op.create_table(
        "case_photo",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_case_photo_case_id", "case_photo", ["case_id"])
    op.create_index("ix_case_photo_case_added", "case_photo", ["case_id", "added_at"])
    with op.batch_alter_table("category") as batch:
        batch.add_column(
            sa.Column("grid_work", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("case_record") as batch:
        batch.add_column(sa.Column("grid_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_case_record_grid_id", "grid", ["grid_id"], ["id"])
        batch.create_index("ix_case_record_grid_id", ["grid_id"])


def downgrade() -> None:
    with op.batch_alter_table("case_record") as batch:
        batch.drop_index("ix_case_record_grid_id")
        batch.drop_constraint("fk_case_record_grid_id", type_="foreignkey")
        batch.drop_column("grid_id")
    with op.batch_alter_table("category") as batch:
        batch.drop_column("grid_work")
    for table in (
        "case_photo",
        "grid_case",
        "grid_address",
        "grid_member",
        "grid",
        "grid_community",
        "grid_street",
    ):
        op.drop_table(table)
