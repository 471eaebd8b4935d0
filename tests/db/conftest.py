"""Every store test runs twice: on SQLite (the embedded default) and on the
session's PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from db.store import make_engine, sqlite_url
from db.tables import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(data_dir)
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    engine = make_engine(url)  # leave an empty database for the next test
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
