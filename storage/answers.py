"""Answers to playbook fields and checklist items, with their history."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, event, insert, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from storage.errors import NotFoundError
from storage.models import Answer, AnswerChange, Deal

# Answers are written with SQL expressions, not ORM objects: this runs for every accepted
# answer, and no other module holds Answer objects, so the ORM's unit of work buys nothing.
_ANSWERS = Answer.__table__
_CHANGES = AnswerChange.__table__
_DEALS = Deal.__table__
_ALL = (
    select(_ANSWERS.c.key, _ANSWERS.c.value)
    .where(_ANSWERS.c.deal_id == bindparam("deal_id"))
    .order_by(_ANSWERS.c.id)
)
# The row of one deal's key; parameters not named after columns, which an UPDATE's SET uses.
_ONE = (_ANSWERS.c.deal_id == bindparam("the_deal")) & (_ANSWERS.c.key == bindparam("the_key"))
# Built once: SQLAlchemy then compiles each of them once and keeps its cache key.
_INSERT = insert(_ANSWERS)
_UPDATE = update(_ANSWERS).where(_ONE)
_DELETE = delete(_ANSWERS).where(_ONE)
_READ_KEY = "stagecoach.answers_read"  # in Session.info: deal id -> answers by key
_RECORD = insert(_CHANGES)
_TOUCH = (
    update(_DEALS)
    .where(_DEALS.c.id == bindparam("touched_deal"))
    .values(updated_at=bindparam("touched_at", type_=_DEALS.c.updated_at.type))
)


def get_answers(session: Session, *, deal_id: int) -> dict[str, Any]:
    """Return a deal's answers by key (copies: mutating them changes nothing stored).

    A deal's answers are read once per transaction: later calls, and the writes below, use
    what was read, kept up to date by those writes (the only ones to answers). A chat turn
    asked for them two or three times, each a round trip to a database server.

    Args:
        session: The open session.
        deal_id: The deal.

    Returns:
        The JSON values by field/checklist id; empty for an unknown deal.
    """
    return copy.deepcopy(_read_once(session, deal_id))


@event.listens_for(Session, "after_transaction_end")
def _forget_reads(session: Session, transaction: Any) -> None:
    """Answers read in a transaction are not trusted after it, nor after a savepoint (one
    rolled back may have undone a write); a flush's inner transaction changes nothing here."""
    if transaction.parent is None or transaction.nested:
        session.info.pop(_READ_KEY, None)


def _read_once(session: Session, deal_id: int) -> dict[str, Any]:
    """The session's own record of a deal's answers (not a copy: only the writers here
    change it, alongside the rows)."""
    read = session.info.setdefault(_READ_KEY, {})
    if deal_id not in read:
        read[deal_id] = dict(session.connection().execute(_ALL, {"deal_id": deal_id}).all())
    return read[deal_id]


def save_answer(
    session: Session, *, deal_id: int, key: str, value: Any, member_id: int, now: datetime
) -> bool:
    """Insert or update one answer; on a real change, record it and touch the deal.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        key: The playbook field or checklist id.
        value: A JSON-serialisable value; None means "no answer" (same as ``delete_answer``).
        member_id: Who answered.
        now: When (timezone-aware).

    Returns:
        Whether the stored value changed.

    Raises:
        NotFoundError: If there is no such deal.
    """
    if value is None:
        return delete_answer(session, deal_id=deal_id, key=key, member_id=member_id, now=now)
    deal = _require_deal(session, deal_id)
    session.flush()  # rows these statements refer to (a new deal, a member) go in first
    connection = session.connection()
    answers = _read_once(session, deal_id)
    old = answers.get(key)
    if old is not None and _same_json(old, value):
        return False
    values = {"value": value, "updated_by": member_id, "updated_at": now}
    row = {"the_deal": deal_id, "the_key": key}
    # The row as read may have gone since (another instance removed the answer): then insert.
    if old is None or connection.execute(_UPDATE, {**row, **values}).rowcount == 0:
        connection.execute(_INSERT, {"deal_id": deal_id, "key": key, **values})
    answers[key] = copy.deepcopy(value)
    _record_change(session, deal, key, old, value, member_id, now)
    return True


def delete_answer(
    session: Session, *, deal_id: int, key: str, member_id: int, now: datetime
) -> bool:
    """Remove one answer, recording the removal (new value None) and touching the deal.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        key: The playbook field or checklist id.
        member_id: Who removed it.
        now: When (timezone-aware).

    Returns:
        Whether there was an answer to remove.

    Raises:
        NotFoundError: If there is no such deal.
    """
    deal = _require_deal(session, deal_id)
    session.flush()  # rows these statements refer to (a new deal, a member) go in first
    answers = _read_once(session, deal_id)
    if key not in answers:
        return False
    session.connection().execute(_DELETE, {"the_deal": deal_id, "the_key": key})
    _record_change(session, deal, key, answers.pop(key), None, member_id, now)
    return True


def list_answer_changes(
    session: Session, *, deal_id: int, key: str | None = None
) -> list[AnswerChange]:
    """Return a deal's answer history, oldest first.

    Args:
        session: The open session.
        deal_id: The deal.
        key: Only this field/checklist id, if given.

    Returns:
        The changes.
    """
    statement = select(AnswerChange).where(AnswerChange.deal_id == deal_id)
    if key is not None:
        statement = statement.where(AnswerChange.key == key)
    statement = statement.order_by(col(AnswerChange.changed_at), col(AnswerChange.id))
    return list(session.exec(statement))


def _require_deal(session: Session, deal_id: int) -> Deal:
    deal = session.get(Deal, deal_id)
    if deal is None:
        raise NotFoundError(f"no deal {deal_id}")
    return deal


def _same_json(old: Any, new: Any) -> bool:
    # Compare as JSON so that e.g. True and 1, or 1 and 1.0, count as different values.
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def _record_change(
    session: Session,
    deal: Deal,
    key: str,
    old_value: Any,
    new_value: Any,
    member_id: int,
    now: datetime,
) -> None:
    connection = session.connection()
    change = {"deal_id": deal.id, "key": key, "old_value": old_value, "new_value": new_value}
    connection.execute(_RECORD, {**change, "changed_by": member_id, "changed_at": now})
    connection.execute(_TOUCH, {"touched_deal": deal.id, "touched_at": now})
    set_committed_value(deal, "updated_at", now)  # the loaded deal says so too, not dirty
