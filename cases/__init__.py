"""Case records (工单) in SQL: the system of record. SQLAlchemy 2 + Alembic."""
