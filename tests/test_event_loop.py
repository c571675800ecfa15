"""Database work run from the event loop (storage/event_loop.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest
from sqlalchemy import Engine, text

from storage.db import PING_WHEN_IDLE_SECONDS, make_engine, transaction
from storage.event_loop import LoopDatabase, libpq_url
from storage.teams import create_team, get_team
from tests.telegram_world import NOW

LOCK_KEY = 4242  # an advisory lock no other test takes


async def test_work_commits_through_the_loop_engine_and_is_seen_by_the_app(engine: Engine) -> None:
    database = LoopDatabase(engine, connections=4)

    def open_team(name: str) -> int:
        with transaction(database.engine) as session:
            return create_team(session, name=name, now=NOW).id

    try:
        team_id = await database.run(open_team, "Sales East")
    finally:
        await database.close()
    with transaction(engine) as session:
        assert get_team(session, team_id=team_id).name == "Sales East"
    assert database.inline == (engine.dialect.name == "sqlite")


async def test_a_turn_waiting_for_the_server_lets_other_turns_run(engine: Engine) -> None:
    """A turn blocked inside PostgreSQL must leave the loop free: the next turn finishes first.

    If ``run`` blocked the loop, the second turn could not start, nothing would release the
    lock the first turn waits for, and the test would time out.
    """
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite work runs inline by design: it answers in microseconds")
    database = LoopDatabase(engine, connections=4)
    order: list[str] = []

    def wait_for_lock() -> None:
        with transaction(database.engine) as session:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            order.append("waited")

    def quick() -> int:
        with transaction(database.engine) as session:
            order.append("quick")
            return session.execute(text("SELECT 1")).scalar_one()

    holder = psycopg.connect(libpq_url(engine.url), autocommit=True)
    unlock = threading.Lock()

    def release() -> None:
        with unlock:
            if not holder.closed:
                holder.execute("SELECT pg_advisory_unlock_all()")

    # A blocked loop could not release the lock: a timer thread does, so the test fails
    # (wrong order) instead of hanging.
    safety = threading.Timer(10, release)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        safety.start()
        waiting = asyncio.create_task(database.run(wait_for_lock))
        await _until_waiting_on_the_lock(holder)
        assert await asyncio.wait_for(database.run(quick), timeout=10) == 1
        release()
        await asyncio.wait_for(waiting, timeout=10)
    finally:
        safety.cancel()
        with unlock:
            holder.close()
        await database.close()
    assert order == ["quick", "waited"]


async def _until_waiting_on_the_lock(holder: psycopg.Connection) -> None:
    for _ in range(500):
        waiting = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = %s AND database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())",
            (LOCK_KEY,),
        ).fetchone()[0]
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the first turn never reached the lock")


async def test_a_connection_dropped_while_idle_is_replaced_on_the_loop_too(
    engine: Engine, postgres_admin_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no connections to lose: the check is for a database server")
    database = LoopDatabase(engine, connections=4)

    def backend_pid() -> int:
        with transaction(database.engine) as session:
            return session.execute(text("SELECT pg_backend_pid()")).scalar_one()

    try:
        first = await database.run(backend_pid)
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        await asyncio.sleep(PING_WHEN_IDLE_SECONDS + 0.1)
        assert await database.run(backend_pid) != first
    finally:
        await database.close()


async def test_turns_beyond_the_connections_wait_for_one_instead_of_opening_more(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite work runs inline, one turn at a time: there is no pool to bound")
    database = LoopDatabase(engine, connections=2)

    def slow_turn() -> int:
        with transaction(database.engine) as session:
            session.execute(text("SELECT pg_sleep(0.05)"))
            return session.execute(text("SELECT pg_backend_pid()")).scalar_one()

    try:
        pids = await asyncio.wait_for(
            asyncio.gather(*(database.run(slow_turn) for _ in range(6))), timeout=30
        )
    finally:
        await database.close()
    assert len(pids) == 6
    assert len(set(pids)) == 2


async def test_libpq_parameters_of_the_url_reach_the_server(engine: Engine) -> None:
    """asyncpg is given the URL as libpq reads it: ``application_name`` becomes the session's
    (SQLAlchemy's asyncpg dialect would refuse it), and the test URL's ``options`` set the
    schema the tables are in."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL connection URL")
    tagged = engine.url.update_query_dict({"application_name": "stagecoach_loop_test"})
    app_engine = make_engine(tagged.render_as_string(hide_password=False))
    database = LoopDatabase(app_engine, connections=4)

    def session_settings() -> tuple[str, int]:
        with transaction(database.engine) as session:
            name = session.execute(text("SELECT current_setting('application_name')"))
            teams = session.execute(text("SELECT count(*) FROM team"))  # in the test's schema
            return name.scalar_one(), teams.scalar_one()

    try:
        assert await database.run(session_settings) == ("stagecoach_loop_test", 0)
    finally:
        await database.close()
        app_engine.dispose()
