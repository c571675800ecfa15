"""Telegram update ids already handled, so that a redelivered update takes effect once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from storage.models import ProcessedUpdate

# Telegram redelivers an update for at most a day; older ids can go.
KEEP_FOR = timedelta(days=2)
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def claim_update(session: Session, *, update_id: int, now: datetime) -> bool:
    """Mark an update as handled in the caller's transaction.

    If the transaction later rolls back, the claim goes with it, so a crash before the commit
    lets the redelivered update be handled again; after the commit it is refused.

    Returns:
        False if the update was handled already.
    """
    insert = _INSERTS[session.get_bind().dialect.name]
    # One statement: a concurrent claim by another instance waits for its transaction and
    # then inserts nothing (PostgreSQL), so exactly one instance sees a row inserted.
    statement = (
        insert(ProcessedUpdate)
        .values(update_id=update_id, processed_at=now)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(ProcessedUpdate.update_id)
    )
    return session.execute(statement).first() is not None


def forget_old_updates(session: Session, *, now: datetime) -> int:
    """Drop claims older than any possible redelivery; returns how many."""
    result = session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < now - KEEP_FOR)
    )
    return result.rowcount
