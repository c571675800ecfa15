"""The outbox: messages of a chat turn, written in its transaction, marked done once sent.

The bot sends what a turn wrote right after the commit; what could not go out (Telegram down,
the process killed) stays here, and goes out in order, per chat, when it can (bot/tg/courier.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlmodel import Session, col

from storage.db import defer_commit_flush
from storage.models import OutboxMessage

# Done rows are kept this long: the newest question of a chat is found among them (a typed
# answer rewrites it), and a look back after an incident can see what went out.
KEEP_DONE = timedelta(days=2)
TABLE = OutboxMessage.__table__


@dataclass(frozen=True)
class NewMessage:
    chat_id: int
    body: dict[str, Any]
    kind: str = "send"
    asks: bool = False
    photo: bytes | None = None
    message_id: int | None = None


_INSERT = insert(TABLE).returning(TABLE.c.id, sort_by_parameter_order=True)
_SENT_AS = bindparam("sent_as", type_=TABLE.c.message_id.type)
_DONE = (
    update(TABLE)
    .where(TABLE.c.id == bindparam("row_id"))
    .values(done_at=bindparam("done"), message_id=func.coalesce(_SENT_AS, TABLE.c.message_id))
)


def keep(
    session: Session, messages: list[NewMessage], *, now: datetime, lease: timedelta
) -> list[int]:
    """Write ``messages`` in the caller's transaction; their ids, in order.

    ``lease``: how long the writer has to send them before another instance may.
    """
    if not messages:
        return []
    rows = [
        {
            "chat_id": m.chat_id,
            "kind": m.kind,
            "asks": m.asks,
            "body": m.body,
            "photo": m.photo,
            "message_id": m.message_id,
            "created_at": now,
            "due_at": now + lease,
            "done_at": None,
        }
        for m in messages
    ]
    return list(session.execute(_INSERT, rows).scalars())


def mark_done(
    connection: Connection, done: Iterable[tuple[int, int | None]], *, now: datetime
) -> None:
    """Each (row id, Telegram's message id or None) is sent, or given up on for good; the
    commit need not wait for PostgreSQL's disk (``defer_commit_flush``)."""
    params = [{"row_id": row_id, "sent_as": sent_as, "done": now} for row_id, sent_as in done]
    if params:
        defer_commit_flush(connection)
        connection.execute(_DONE, params)


def drop_messages(connection: Connection, row_ids: Iterable[int], *, now: datetime) -> None:
    """Give up on these messages without sending them (done, with no Telegram message)."""
    mark_done(connection, [(row_id, None) for row_id in row_ids], now=now)


def unsent(session: Session, *, chat_id: int) -> list[OutboxMessage]:
    """The chat's messages not yet sent, oldest first."""
    statement = (
        select(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id, col(OutboxMessage.done_at).is_(None))
        .order_by(col(OutboxMessage.id))
    )
    return list(session.execute(statement).scalars())


def chats_with_unsent(session: Session) -> list[int]:
    """Every chat that has a message waiting (a start-up sends them first)."""
    statement = (
        select(col(OutboxMessage.chat_id))
        .where(col(OutboxMessage.done_at).is_(None))
        .group_by(col(OutboxMessage.chat_id))
        .order_by(func.min(OutboxMessage.id))
    )
    return list(session.execute(statement).scalars())


def take_over_due(session: Session, *, now: datetime, lease: timedelta) -> list[int]:
    """Chats with messages whose writer has not sent them in time (it died, or Telegram was
    down); they are this caller's for ``lease`` now."""
    due = col(OutboxMessage.done_at).is_(None) & (col(OutboxMessage.due_at) <= now)
    chats = list(
        session.execute(select(col(OutboxMessage.chat_id)).where(due).distinct()).scalars()
    )
    if chats:
        session.execute(
            update(OutboxMessage)
            .where(due, col(OutboxMessage.chat_id).in_(chats))
            .values(due_at=now + lease)
        )
    return chats


def newest_question(session: Session, *, chat_id: int, before_id: int) -> int | None:
    """Telegram's id of the newest question message sent to the chat before row ``before_id``."""
    statement = (
        select(col(OutboxMessage.message_id))
        .where(
            col(OutboxMessage.chat_id) == chat_id,
            col(OutboxMessage.id) < before_id,
            col(OutboxMessage.asks),
            col(OutboxMessage.message_id).is_not(None),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return session.execute(statement).scalar()


def newest_questions(session: Session, *, chat_id: int, limit: int = 20) -> list[OutboxMessage]:
    """The chat's newest question messages (sent or not), newest first."""
    statement = (
        select(OutboxMessage)
        .where(
            col(OutboxMessage.chat_id) == chat_id,
            col(OutboxMessage.kind) == "send",
            col(OutboxMessage.asks),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def newest_prompt(session: Session, *, chat_id: int) -> OutboxMessage | None:
    """The newest message (not an edit) kept for the chat: what the rep was last told."""
    statement = (
        select(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id, col(OutboxMessage.kind) == "send")
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return session.execute(statement).scalar()


def forget_done(session: Session, *, now: datetime) -> int:
    """Drop done rows older than ``KEEP_DONE``; returns how many."""
    result = session.execute(
        delete(OutboxMessage).where(col(OutboxMessage.done_at) < now - KEEP_DONE)
    )
    return result.rowcount
