"""A SQLite file pulled from under the running bot (issues 13 and 18): deleted, or made
immutable, it killed the bot (SIGBUS, nothing logged) or let it "save" into a file nobody would
open again. Now it is reported once, every turn answers "not saved", and once the file is back
the bot saves again."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flows.i18n import t
from storage.db import make_engine, transaction
from storage.file_watch import DatabaseUnavailable, FileWatch, unwritable
from storage.models import Team
from tests.fake_bot_api import FakeBotApi
from tests.test_run_process import seed_member, start_bot


def make_unwritable(path: Path) -> None:
    """Immutable (root, whom permissions do not stop) or read-only; skip where neither works."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {done.stderr.decode().strip()}")
    else:
        path.chmod(0o444)


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    path.chmod(0o600)


def test_an_unusable_file_fails_every_use_until_it_is_back(tmp_path, sqlite_engine) -> None:
    path = Path(sqlite_engine.url.database)
    watch = FileWatch(sqlite_engine, path)
    from sqlalchemy import event

    event.listen(sqlite_engine, "checkout", watch.refuse_while_unusable)
    make_unwritable(path)
    try:
        assert "cannot be written" in unwritable(path)
        watch.look()
        assert watch.problem is not None
        with pytest.raises(DatabaseUnavailable), transaction(sqlite_engine) as session:
            session.get(Team, 1)
    finally:
        make_writable(path)
    watch.look()
    assert watch.problem is None
    with transaction(sqlite_engine) as session:
        session.get(Team, 1)
    saved = tmp_path / "saved.db"
    shutil.copy(path, saved)
    path.unlink()
    watch.look()
    assert watch.problem == "was deleted"
    shutil.copy(saved, path)  # put back from a backup: a new file at the path
    watch.look()
    assert watch.problem is None
    with transaction(sqlite_engine) as session:
        session.get(Team, 1)


def test_the_bot_will_not_start_on_a_file_it_cannot_write(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_engine(url).dispose()
    make_unwritable(tmp_path / "bot.db")
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot be written"):
            make_engine(url)
    finally:
        make_writable(tmp_path / "bot.db")


@pytest.mark.full
@pytest.mark.parametrize("how", ["deleted", "made_unwritable"])
async def test_the_running_bot_answers_not_saved_and_saves_again_once_the_file_is_back(
    tmp_path, fake: FakeBotApi, how: str
) -> None:
    seed_member(tmp_path, 1001)
    database = tmp_path / "bot.db"
    process, log = start_bot(tmp_path, fake, None)
    try:
        await fake.wait_for(lambda: fake.calls("getUpdates"), timeout=30)
        fake.user_message(1001, "/new", language_code="en")
        await fake.wait_for(lambda: len(fake.sent(1001)) == 1, timeout=30)
        backup = tmp_path / "backup.db"
        with sqlite3.connect(database) as source, sqlite3.connect(backup) as copy:
            source.backup(copy)  # what the WAL holds too
        if how == "deleted":
            for file in tmp_path.glob("bot.db*"):
                file.unlink()
        else:
            make_unwritable(database)
        await fake.wait_for(lambda: "nothing is saved until" in log.read_text(), timeout=30)
        fake.user_message(1001, "Acme Bank", language_code="en")
        await fake.wait_for(lambda: len(fake.sent(1001)) == 2, timeout=30)
        assert fake.sent(1001)[-1]["text"] == t("en", "dialog.error")
        assert process.poll() is None  # alive
        if how == "deleted":
            shutil.copy(backup, database)
        else:
            make_writable(database)
        await fake.wait_for(lambda: "can be used again" in log.read_text(), timeout=30)
        fake.user_message(1001, "Acme Bank", language_code="en")
        await fake.wait_for(lambda: len(fake.sent(1001)) >= 3, timeout=30)
        assert "What shall we call this deal" in fake.sent(1001)[-1]["text"]
    finally:
        make_writable(database)
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text()
    assert "Traceback" not in output and "Fatal Python error" not in output
    assert output.count("nothing is saved until") == 1


def test_looking_at_the_file_keeps_sqlites_locks(tmp_path) -> None:
    """The look once opened and closed the file, which drops this process's POSIX locks on it
    (SQLite's too): another process could then write inside the bot's transaction. A "database
    disk image is malformed" in a crash test came from it."""
    path = tmp_path / "locks.db"
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    holder.execute("INSERT INTO t VALUES (1)")
    assert unwritable(path) is None  # the watch's look, in the same process
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None, "
            "timeout=0); c.execute('BEGIN IMMEDIATE'); print('wrote beside the holder')",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    holder.execute("COMMIT")
    holder.close()
    assert other.returncode != 0 and "database is locked" in other.stderr
