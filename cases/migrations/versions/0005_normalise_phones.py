"""phone numbers stored before normalisation, rewritten to E.164

Rows written before numbers were normalised hold them as typed (13800138000,
0898-66668888, 86138...). Rewritten with the same rules as every entry point
(cases.phones, region and area code from HOTLINE_PHONE_REGION / HOTLINE_AREA_CODE);
a number that cannot be read is left as it is. Two register rows that turn out to be
one citizen are merged: the older row stays, flagged vulnerable if either was.

Revision ID: 0005
Revises: 0004
"""

import os

import sqlalchemy as sa
from alembic import op

from cases.phones import PhoneSettings, normalise_or_raw

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    ("case_record", "id", "caller_phone"),
    ("callback_request", "id", "caller_phone"),
    ("call_record", "call_id", "caller"),
)


def _settings() -> PhoneSettings:
    return PhoneSettings(
        region=(os.environ.get("HOTLINE_PHONE_REGION") or "CN").upper(),
        area_code=(os.environ.get("HOTLINE_AREA_CODE") or "0898").lstrip("0"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    settings = _settings()
    for table, key, column in COLUMNS:
        rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table}")).all()
        for row_key, phone in rows:
            fixed = normalise_or_raw(phone or "", settings)
            if phone and fixed and fixed != phone:
                bind.execute(
                    sa.text(f"UPDATE {table} SET {column} = :fixed WHERE {key} = :key"),
                    {"fixed": fixed, "key": row_key},
                )
    kept: dict[str, tuple[int, bool]] = {}
    rows = bind.execute(
        sa.text("SELECT id, phone, vulnerable FROM citizen_register ORDER BY id")
    ).all()
    for row_id, phone, vulnerable in rows:
        fixed = normalise_or_raw(phone or "", settings) or phone
        if fixed in kept:  # the same citizen typed twice
            first_id, first_vulnerable = kept[fixed]
            if vulnerable and not first_vulnerable:
                bind.execute(
                    sa.text("UPDATE citizen_register SET vulnerable = :v WHERE id = :id"),
                    {"v": True, "id": first_id},
                )
            bind.execute(sa.text("DELETE FROM citizen_register WHERE id = :id"), {"id": row_id})
            continue
        kept[fixed] = (row_id, bool(vulnerable))
        if fixed != phone:
            bind.execute(
                sa.text("UPDATE citizen_register SET phone = :fixed WHERE id = :id"),
                {"fixed": fixed, "id": row_id},
            )


def downgrade() -> None:
    """Nothing to undo: the numbers are the same numbers, written one way."""
