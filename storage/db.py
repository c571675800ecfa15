"""Engines, migrations and transactions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
from sqlmodel import Session

from storage.file_watch import DatabaseUnavailable, unwritable
from storage.files import private_database_file

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000")
SQLITE_SYNCHRONOUS = ("normal", "full")
PING_WHEN_IDLE_SECONDS = 1.0  # see ping_when_idle
# INSERT with ON CONFLICT, per dialect: SQLAlchemy's generic insert() has no such clause.
INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


_READ_ONLY = "stagecoach_read_only"  # a connection execution option, see transaction()


def per_dialect(build: Callable[[Callable], Any]) -> dict[str, Any]:
    """``build(insert)`` for each dialect's ON CONFLICT-capable insert, built once; look the
    statement up by ``connection.dialect.name``."""
    return {name: build(insert) for name, insert in INSERTS.items()}


def make_engine(url: str, *, sqlite_synchronous: str = "normal", **engine_kwargs: Any) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    SQLite: the parent folder of a file database is created and every connection gets WAL
    journaling, foreign keys and a 5 s busy timeout. PostgreSQL: ``postgresql://`` (and
    ``postgres://``) URLs use psycopg 3; a pooled connection is checked before use when it sat
    idle (``ping_when_idle``).

    Args:
        url: A SQLAlchemy database URL.
        sqlite_synchronous: ``normal`` (WAL's usual setting: a commit survives the process
            dying at any moment, and no fsync waits on each commit) or ``full`` (a commit also
            survives a power cut or an OS crash, at the price of an fsync per commit).
        **engine_kwargs: Extra arguments for ``sqlalchemy.create_engine`` (e.g. ``connect_args``).

    Returns:
        The engine.
    """
    parsed = make_url(url)
    # A failed statement's error names its SQL, never its values: those are what reps typed,
    # and error messages end up in logs that operators keep and read.
    engine_kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, **engine_kwargs)
        ping_when_idle(engine)
        return engine
    if parsed.get_backend_name() == "sqlite":
        _make_sqlite_folder(parsed)
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}")
        pragmas = (*_SQLITE_PRAGMAS, f"synchronous={sqlite_synchronous.upper()}")
        engine = create_engine(parsed, **engine_kwargs)
        event.listen(engine, "connect", lambda conn, _record: _set_sqlite_pragmas(conn, pragmas))
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(parsed, **engine_kwargs)


# serialization_failure, deadlock_detected: the server gave up on a transaction because of
# another one; the same work run again may well succeed.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def database_failure(exc: BaseException) -> str | None:
    """The cause, in one line, when the database itself failed (a full disk, an I/O error, a
    file gone: an operator's fact); None for anything else (a bug, with its traceback)."""
    if not isinstance(exc, OperationalError | DatabaseUnavailable):
        return None
    cause = getattr(exc, "orig", None) or exc  # not the statement it failed in
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def worth_retrying(exc: BaseException) -> bool:
    """Whether a transaction failed only because a concurrent one got in its way."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def ping_when_idle(engine: Engine, idle_seconds: float = PING_WHEN_IDLE_SECONDS) -> None:
    """Check a pooled connection before use, unless it was in use moments ago.

    A database restart leaves the pool holding dead connections; a check on checkout finds
    them, and the pool replaces them before anyone's work fails. ``pool_pre_ping`` checks on
    every checkout: a round trip on each chat turn and on each batch a nudge tick records.
    A connection given back less than ``idle_seconds`` ago is taken as alive; if the server
    went down in that second, that one piece of work fails (and, being a disconnect, makes
    the pool drop all its connections). A dead connection found here means the server
    restarted: the pool drops every connection as old as it, as ``pool_pre_ping`` does.
    """

    @event.listens_for(engine, "checkin")
    def _given_back(dbapi_connection: Any, record: Any) -> None:
        record.info["given_back_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        given_back_at = record.info.get("given_back_at")
        if given_back_at is None or time.monotonic() - given_back_at < idle_seconds:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise InvalidatePoolError(f"connection found dead before use: {exc}") from exc


def checkpoint_in_background(engine: Engine, every_seconds: float = 1.0) -> Callable[[], None]:
    """Move SQLite's WAL checkpoints out of the transactions that commit, into a thread.

    By default the commit that fills the WAL past 1,000 pages copies it into the database
    file, fsyncs included: now and then a chat turn's commit stalls the event loop, which
    shows in the tail latency (bench/README.md). Here the engine's connections turn that off
    and a daemon thread runs a PASSIVE checkpoint (it waits for no reader or writer) every
    ``every_seconds``.
    Nothing to do on PostgreSQL.

    Returns:
        A function that stops the thread.
    """
    if engine.dialect.name != "sqlite":
        return lambda: None
    event.listen(
        engine, "connect", lambda dbapi_connection, _record: _no_autocheckpoint(dbapi_connection)
    )
    engine.dispose()  # connections opened before this reconnect with autocheckpoints off
    stop = threading.Event()

    def checkpoint_until_stopped() -> None:
        while not stop.wait(every_seconds):
            try:
                connection = engine.raw_connection()
                try:
                    connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    connection.close()
            except DatabaseUnavailable:
                pass  # the file watch has said why (storage/file_watch.py)
            except Exception as exc:  # a failed checkpoint leaves a longer WAL, nothing is lost
                log.warning("WAL checkpoint failed (%s)", exc)

    thread = threading.Thread(
        target=checkpoint_until_stopped, name="sqlite-checkpoints", daemon=True
    )
    thread.start()

    def stop_checkpoints() -> None:
        stop.set()
        thread.join(timeout=30)

    return stop_checkpoints


def _no_autocheckpoint(dbapi_connection: Any) -> None:
    dbapi_connection.cursor().execute("PRAGMA wal_autocheckpoint=0")


def _make_sqlite_folder(url: URL) -> None:
    """The database's folder and file, created (or tightened) for the owner only."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        private_database_file(path)
        problem = unwritable(path)
        if problem is not None:  # SQLite would die of SIGBUS at its first write, silently
            raise DatabaseUnavailable(f"{path} {problem}")


def _set_sqlite_pragmas(dbapi_connection: Any, pragmas: tuple[str, ...]) -> None:
    # pysqlite opens transactions lazily and not before a SAVEPOINT, so a nested transaction
    # would commit on its own. Turn that off and begin transactions ourselves (_begin_sqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _begin_sqlite(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: SQLite has one writer, and a read that later
    # wants to write could otherwise fail with "database is locked" instead of waiting. A
    # read-only transaction begins DEFERRED: it reads a snapshot and holds up no writer.
    read_only = connection.get_execution_options().get(_READ_ONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def alembic_config() -> Config:
    """Build the Alembic configuration of the ``storage/migrations`` folder (no alembic.ini).

    Returns:
        A config whose ``script_location`` is the migrations folder inside the package.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (a no-op when already there).

    Args:
        engine: The database to migrate.
        revision: The target revision; the newest by default.
    """
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextmanager
def transaction(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """Open a session that commits when the block succeeds and rolls back when it raises.

    Args:
        engine: The database.
        read_only: the block only reads (long reads such as a team's digest): on SQLite it
            does not take the write lock, so chat turns meanwhile need not wait; PostgreSQL
            refuses any write in it.

    Returns:
        A context manager yielding the session (objects stay usable after the commit).
    """
    with Session(engine, expire_on_commit=False) as session:
        if read_only:
            connection = session.connection(execution_options={_READ_ONLY: True})
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def defer_commit_flush(connection: Connection) -> None:
    """Let this transaction's commit return before PostgreSQL has flushed it to disk.

    Only for records that may be lost if the database server itself crashes (within about
    0.6 s of the commit; the bot dying loses nothing once the server has the commit). A lost
    delivery record means the message goes again, as when the bot dies between sending and
    recording; nothing becomes inconsistent. SQLite's synchronous=NORMAL makes the same trade
    for every commit.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit = off"))
