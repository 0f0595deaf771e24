"""the knowledge base (知识库): articles, their versions, answers from them, the pinyin
word list, and a Chinese word index (SQLite FTS5, or a tsvector with GIN on PostgreSQL)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _place_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category_id", sa.Integer(), sa.ForeignKey("category.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("department.id"), nullable=False),
        sa.Column("district_id", sa.Integer(), sa.ForeignKey("district.id"), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("review_on", sa.Date(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "kb_article",
        sa.Column("id", sa.Integer(), primary_key=True),
        *_place_columns(),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answered_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kb_article_status_category", "kb_article", ["status", "category_id"])
    op.create_table(
        "kb_article_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        *_place_columns(),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("written_by", sa.String(length=64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_kb_article_version_article_id", "kb_article_version", ["article_id"])
    op.create_index(
        "ux_kb_article_version_number", "kb_article_version", ["article_id", "number"], unique=True
    )
    op.create_table(
        "kb_answer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "case_id", sa.Integer(), sa.ForeignKey("case_record.id"), nullable=False, unique=True
        ),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey("kb_article.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answered_by", sa.String(length=64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kb_answer_article_id", "kb_answer", ["article_id"])
    op.create_index("ix_kb_answer_answered_at", "kb_answer", ["answered_at"])
    op.create_table(
        "kb_word",
        sa.Column("word", sa.String(length=32), primary_key=True),
        sa.Column("pinyin", sa.String(length=160), nullable=False),
    )
    op.create_index("ix_kb_word_pinyin", "kb_word", ["pinyin"])
    # The word index lives outside the models: its shape is the database's own.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE kb_article_fts USING fts5("
            "title, category, body, title_chars, body_chars, tokenize='unicode61')"
        )
        # How many articles have each word: search leaves out a question's very common
        # words (问题, 处理) when it has rarer ones, which cost most and rank least.
        op.execute("CREATE VIRTUAL TABLE kb_article_fts_vocab USING fts5vocab(kb_article_fts, row)")
    else:
        op.execute(
            "CREATE TABLE kb_article_search ("
            "article_id integer PRIMARY KEY REFERENCES kb_article(id) ON DELETE CASCADE, "
            "document tsvector NOT NULL)"
        )
        op.execute(
            "CREATE INDEX ix_kb_article_search_document ON kb_article_search USING gin (document)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE kb_article_fts_vocab")
        op.execute("DROP TABLE kb_article_fts")
    else:
        op.execute("DROP TABLE kb_article_search")
    op.drop_table("kb_word")
    op.drop_table("kb_answer")
    op.drop_table("kb_article_version")
    op.drop_table("kb_article")
