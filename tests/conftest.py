"""Shared fixtures: databases and the fake Bot API.

``db_url`` / ``engine`` / ``session`` run each test on SQLite (a file in tmp_path) and on
PostgreSQL (``TEST_POSTGRES_URL`` or postgresql://postgres@127.0.0.1:5432/test), every
PostgreSQL test in a fresh schema that is dropped afterwards. ``sqlite_engine`` /
``sqlite_session`` are SQLite only, for fast tests. ``fake`` is the fake Bot API on loopback
with its flood limits off (tests of the limits start their own).

Two tiers: ``make test`` runs everything; ``make check`` (``pytest -m "not full"``) the pure
and dialog tests on SQLite, for the inner loop. A test is in the full tier only when it runs on
PostgreSQL, talks to a fake Bot API, or is marked ``full`` (processes, crash and abuse runs).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from bot.dialog import refusals
from storage.db import make_engine, upgrade
from tests.fake_bot_api import FakeBotApi

# PTB 22 warns (an error under filterwarnings=error) when RetryAfter.retry_after is read as a
# number; opt in to its timedelta form for every test and every bot process a test starts.
os.environ["PTB_TIMEDELTA"] = "true"

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Fixtures that mean a test belongs to the full tier: a server database or a Bot API.
FULL_TIER_FIXTURES = {"postgres_admin_url", "fake", "fake_api", "world"}
POSTGRES_CONNECT_TIMEOUT = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: only in the full tier (make test), not make check")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgresql = callspec is not None and "postgresql" in callspec.params.values()
        if on_postgresql or FULL_TIER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.full)


def _postgres_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as psycopg accepts it."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    options = " ".join(filter(None, [parsed.query.get("options"), f"-csearch_path={schema}"]))
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The libpq URL of the test PostgreSQL server; skips (once, cached) if it does not answer."""
    url = _libpq_url(_postgres_url())
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        with psycopg.connect(url, connect_timeout=POSTGRES_CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"PostgreSQL not reachable at {shown}: {reason}")
    return url


def _sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'stagecoach.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL; PostgreSQL URLs carry ``options=-csearch_path=<fresh schema>``."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield _with_search_path(admin_url, schema)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _migrated_engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine, on SQLite and on PostgreSQL."""
    yield from _migrated_engine(db_url)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated engine on a SQLite file only."""
    yield from _migrated_engine(_sqlite_url(tmp_path))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on ``engine``; tests commit explicitly (objects stay loaded after commit)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    """Like ``session``, on ``sqlite_engine``."""
    with Session(sqlite_engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(rate_limits=False) as server:
        yield server


@pytest.fixture(autouse=True)
def _refusals_counted_afresh() -> Iterator[None]:
    """Refused presses are logged once a minute per member id, and every test's database
    reuses the same ids: each test starts with no counts."""
    refusals.FORGED.forget()
    refusals.STALE.forget()
    yield
