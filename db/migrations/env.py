"""Alembic environment: migrations run online against the configured URL."""

from __future__ import annotations

from alembic import context

from db.store import make_engine
from db.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "db.store.upgrade sets sqlalchemy.url"

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
