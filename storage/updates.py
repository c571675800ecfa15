"""Telegram update ids already handled, so that a redelivered update takes effect once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete
from sqlmodel import Session, col

from storage.db import per_dialect
from storage.models import ProcessedUpdate

# Telegram redelivers an update for at most a day; older ids can go.
KEEP_FOR = timedelta(days=2)


def _claim_statement(insert):
    # Built once, values bound per call: it is on the path of every update.
    return (
        insert(ProcessedUpdate.__table__)
        .values(update_id=bindparam("update_id"), processed_at=bindparam("now"))
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(ProcessedUpdate.__table__.c.update_id)
    )


CLAIMS = per_dialect(_claim_statement)


def claim_update(session: Session, *, update_id: int, now: datetime) -> bool:
    """Mark an update as handled in the caller's transaction.

    If the transaction later rolls back, the claim goes with it, so a crash before the commit
    lets the redelivered update be handled again; after the commit it is refused.

    Returns:
        False if the update was handled already.
    """
    connection = session.connection()
    # One statement: a concurrent claim by another instance waits for its transaction and
    # then inserts nothing (PostgreSQL), so exactly one instance sees a row inserted.
    statement = CLAIMS[connection.dialect.name]
    inserted = connection.execute(statement, {"update_id": update_id, "now": now}).first()
    return inserted is not None


def forget_old_updates(session: Session, *, now: datetime) -> int:
    """Drop claims older than any possible redelivery; returns how many."""
    result = session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < now - KEEP_FOR)
    )
    return result.rowcount
