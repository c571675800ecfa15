"""Scratch databases: a SQLite file in a temporary folder, or a PostgreSQL database of its own.

Each is migrated with the product's Alembic migrations (the real schema and indexes) and is
removed afterwards. PostgreSQL is the server of the test suite (``BENCH_POSTGRES_URL``, else
``TEST_POSTGRES_URL``, else postgresql://postgres@127.0.0.1:5432/test); when it does not answer,
``postgres_problem`` says why and the PostgreSQL parts are skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from storage.db import make_engine, upgrade

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 2
KINDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Database:
    kind: str  # sqlite | postgresql
    url: str  # SQLAlchemy URL, as DATABASE_URL takes it

    def engine(self, **kwargs) -> Engine:
        return make_engine(self.url, **kwargs)

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"


def admin_url() -> str:
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")
    return (
        make_url(url or DEFAULT_POSTGRES_URL)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def postgres_problem() -> str | None:
    """None if the PostgreSQL server answers, else the reason it is skipped."""
    url = admin_url()
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shown = make_url(url).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {shown}: {reason}"
    return None


def postgres_version() -> str:
    with psycopg.connect(admin_url(), connect_timeout=CONNECT_TIMEOUT) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


@contextmanager
def scratch(kind: str, name: str) -> Iterator[Database]:
    """A migrated, empty database of ``kind``; removed when the block ends."""
    manager = _sqlite if kind == "sqlite" else _postgres
    with manager(name) as database:
        engine = database.engine()
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield database


@contextmanager
def _sqlite(name: str) -> Iterator[Database]:
    folder = Path(tempfile.mkdtemp(prefix=f"stagecoach-bench-{name}-"))
    try:
        yield Database("sqlite", f"sqlite:///{folder / 'bench.db'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _postgres(name: str) -> Iterator[Database]:
    admin = admin_url()
    database = f"stagecoach_bench_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = make_url(admin).set(database=database).render_as_string(hide_password=False)
    try:
        yield Database("postgresql", url)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def copy_sqlite(source: Database, folder: Path) -> Database:
    """A copy of a SQLite database file (after a checkpoint), for a process of its own."""
    engine = source.engine()
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    target = folder / "copy.db"
    shutil.copyfile(make_url(source.url).database, target)
    return Database("sqlite", f"sqlite:///{target}")
