"""Files the product writes are its owner's alone: they hold every deal of every team.

A SQLite database and its folder are created readable by the owner only (SQLite gives its
``-wal`` and ``-shm`` files the database file's permissions); a database file found readable
by others is tightened, with one log line. Other local users of the host read nothing.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_folder(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by the owner only; an existing folder is
    left as it is (it may be shared on purpose)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)


def private_database_file(path: Path) -> None:
    """Make sure a SQLite file and its companions are the owner's alone, before SQLite opens it."""
    private_folder(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
        return
    for file in (path, *(path.with_name(path.name + end) for end in SQLITE_COMPANIONS)):
        _tighten(file)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read."""
    private_folder(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), PRIVATE_FILE)  # an existing file keeps its mode otherwise
        file.write(data)


def _tighten(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077 and file.stat().st_uid == os.getuid():
        file.chmod(PRIVATE_FILE)
        log.info("%s was readable by others; now only by its owner", file)
