"""consult transfers, unit duty numbers and the knowledge reviewer's own note (issue 19)

Each unit (a department or a district government) gets a duty phone (值班电话, E.164),
the number an operator rings for a consult transfer.

A knowledge version's reviewer writes into review_note, no longer appended to the
writer's note. A rejection's note is moved out of the writer's note where the audit
line (kb-rejected, "v<n>: <note>") shows which part it was; an approval's note was
never audited, so an old approval's note stays where it is.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("department") as batch:
        batch.add_column(sa.Column("duty_phone", sa.String(32), nullable=True))
    with op.batch_alter_table("kb_article_version") as batch:
        batch.add_column(sa.Column("review_note", sa.Text(), nullable=False, server_default=""))
    split_rejection_notes()


def split_rejection_notes() -> None:
    bind = op.get_bind()
    versions = sa.table(
        "kb_article_version",
        sa.column("id", sa.Integer),
        sa.column("article_id", sa.Integer),
        sa.column("number", sa.Integer),
        sa.column("state", sa.String),
        sa.column("note", sa.Text),
        sa.column("review_note", sa.Text),
    )
    audit = sa.table(
        "action_log",
        sa.column("id", sa.Integer),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.Text),
    )
    rejected = bind.execute(
        sa.select(versions.c.id, versions.c.article_id, versions.c.number, versions.c.note).where(
            versions.c.state == "rejected", versions.c.note != ""
        )
    ).all()
    for version_id, article_id, number, note in rejected:
        details = bind.execute(
            sa.select(audit.c.detail)
            .where(audit.c.action == "kb-rejected", audit.c.target == f"kb:{article_id}")
            .order_by(audit.c.id.desc())
        ).scalars()
        prefix = f"v{number}: "
        said = next((d[len(prefix) :] for d in details if d.startswith(prefix)), None)
        if not said:
            continue
        if note == said:
            writer, reviewer = "", said
        elif note.endswith("\n" + said):
            writer, reviewer = note[: -len(said) - 1], said
        else:
            continue
        bind.execute(
            versions.update()
            .where(versions.c.id == version_id)
            .values(note=writer, review_note=reviewer)
        )


def downgrade() -> None:
    bind = op.get_bind()
    versions = sa.table(
        "kb_article_version",
        sa.column("id", sa.Integer),
        sa.column("note", sa.Text),
        sa.column("review_note", sa.Text),
    )
    rows = bind.execute(
        sa.select(versions.c.id, versions.c.note, versions.c.review_note).where(
            versions.c.review_note != ""
        )
    ).all()
    for version_id, note, review_note in rows:
        joined = (note + "\n" if note else "") + review_note
        bind.execute(versions.update().where(versions.c.id == version_id).values(note=joined))
    with op.batch_alter_table("kb_article_version") as batch:
        batch.drop_column("review_note")
    with op.batch_alter_table("department") as batch:
        batch.drop_column("duty_phone")
