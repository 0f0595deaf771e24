"""Alembic environment: the URL comes from the Config built in cases/db.py."""

from alembic import context
from sqlalchemy import create_engine

from cases.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    if not url:
        raise RuntimeError("alembic: no sqlalchemy.url (cases.db builds the Config with one)")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
