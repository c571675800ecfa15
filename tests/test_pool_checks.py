"""Pooled PostgreSQL connections are checked before use only when they sat idle."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from storage.db import PING_WHEN_IDLE_SECONDS, make_engine, ping_when_idle


@pytest.fixture
def postgres_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no connections to lose: the check is for a database server")
    return db_url


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(
    postgres_url: str, postgres_admin_url: str
) -> None:
    engine = make_engine(postgres_url)
    try:
        first = _backend_pid(engine)
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(PING_WHEN_IDLE_SECONDS + 0.1)  # idle long enough to be checked
        assert _backend_pid(engine) != first  # the dead one was replaced, nothing failed
    finally:
        engine.dispose()


def test_a_connection_in_use_a_moment_ago_is_not_checked_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = {"recent": 0, "idle": 0}
    engines = {}
    for name, idle_seconds in (("recent", 3600.0), ("idle", 0.0)):
        engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        ping_when_idle(engine, idle_seconds)
        real_ping = engine.dialect.do_ping

        def counting_ping(dbapi_connection, name=name, real_ping=real_ping) -> bool:
            pings[name] += 1
            return real_ping(dbapi_connection)

        monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
        engines[name] = engine
    try:
        for engine in engines.values():
            for _ in range(5):
                _backend_pid(engine)
    finally:
        for engine in engines.values():
            engine.dispose()
    # A new connection needs no check; the idle engine checks each reuse, the busy one none.
    assert pings == {"recent": 0, "idle": 4}
