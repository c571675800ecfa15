"""Noticing that a running bot's SQLite file was deleted, replaced or can no longer be written.

SQLite keeps the file it opened. Deleted, it goes on writing to a file nobody will open again:
every answer after that is lost at the next start, silently. Made immutable (``chattr +i``) or
on a filesystem remounted read-only, its memory-mapped ``-shm`` file kills the process with
SIGBUS at the next write, with nothing logged. So while the bot runs a thread looks at the
file every second. While it is gone or cannot be written, that is logged once, and every use of
the database fails at once with DatabaseUnavailable, before SQLite touches the file: a chat
turn answers "not saved" instead of pretending. The look goes on, and once a writable file is
at the path again (the same one, or one put back from a backup), the database is used again.

PostgreSQL needs none of this: a server that fails answers with an error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
LOOK_SECONDS = 1.0
COMPANIONS = ("-wal", "-shm")


class DatabaseUnavailable(SQLAlchemyError):
    """The SQLite file cannot be used now (the message says why); nothing was written."""


class FileWatch:
    def __init__(self, engine: Engine, path: Path):
        self.engine = engine
        self.path = path
        self.problem: str | None = None
        self._identity = _identity(path)

    def look(self) -> None:
        """Check the file once; log a change, and adopt a file put back at the path."""
        problem = self._find_problem()
        if problem == self.problem:
            return
        if problem is not None:
            log.error(
                "the database file %s %s: nothing is saved until it is back (retrying)",
                self.path,
                problem,
            )
        else:
            if _identity(self.path) != self._identity:
                self._identity = _identity(self.path)
                self.engine.dispose()  # connections to the file that went are not used again
            log.warning("the database file %s can be used again", self.path)
        self.problem = problem

    def refuse_while_unusable(self, *_: object) -> None:
        """A pool ``checkout`` listener: no connection while the file is unusable."""
        if self.problem is not None:
            raise DatabaseUnavailable(f"the database file {self.problem}")

    def _find_problem(self) -> str | None:
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            return "was deleted"
        if identity != self._identity and self.problem is None:
            return "was replaced by another file"
        return unwritable(self.path)


def _identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def unwritable(path: Path) -> str | None:
    """Why a SQLite file (or its -wal or -shm) cannot be written, or None.

    ``access(W_OK)`` asks the kernel what an open for writing would meet (an immutable file, a
    read-only filesystem, permissions) without opening the file. Opening and closing it would
    be wrong here: closing any descriptor of a file drops every POSIX lock this process holds
    on it, SQLite's included, and another process could then write beside the bot's own
    transaction and corrupt the database (sqlite.org/howtocorrupt.html, 2.2)."""
    for file in (path, *(path.with_name(path.name + companion) for companion in COMPANIONS)):
        if not file.exists():
            continue  # SQLite makes its companions when it needs them
        if not os.access(file, os.W_OK):
            return f"cannot be written ({file.name})"
    return None


def watch_sqlite_file(engine: Engine) -> Callable[[], None]:
    """Watch the engine's SQLite file from a daemon thread; returns what stops it."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return lambda: None
    watch = FileWatch(engine, Path(database).expanduser())
    event.listen(engine, "checkout", watch.refuse_while_unusable)
    stop = threading.Event()

    def look_until_stopped() -> None:
        while not stop.wait(LOOK_SECONDS):
            try:
                watch.look()
            except Exception:  # a look that fails tells nothing; the next one may
                log.exception("could not look at the database file")

    thread = threading.Thread(target=look_until_stopped, name="sqlite-file-watch", daemon=True)
    thread.start()

    def stop_watching() -> None:
        stop.set()
        thread.join(timeout=5)

    return stop_watching
