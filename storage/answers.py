"""Answers to playbook fields and checklist items, with their history."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, delete, func, insert, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from storage.db import per_dialect
from storage.errors import require
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
# PostgreSQL: a deal's answers as one JSON object in _ALL's order (NULL if none), for reading
# with the deal in one round trip (storage/deals.get_deal_with_answers).
ANSWERS_OF_DEAL = (
    select(
        func.json_object_agg(
            _ANSWERS.c.key, aggregate_order_by(_ANSWERS.c.value, _ANSWERS.c.id), type_=JSON
        )
    )
    .where(_ANSWERS.c.deal_id == _DEALS.c.id)
    .scalar_subquery()
)


# A change to one answer is three writes: the answer, its history and the deal's updated_at.
# Their parameters, shared: the_deal, the_key, old_value, new_value, member, now.
_ONE = (_ANSWERS.c.deal_id == bindparam("the_deal")) & (_ANSWERS.c.key == bindparam("the_key"))
_DELETE = delete(_ANSWERS).where(_ONE)


def _bound(**parameters: str) -> dict[str, Any]:
    """An answer row's VALUES: its deal and key, and ``column=parameter`` for the rest."""
    named = {"deal_id": "the_deal", "key": "the_key", **parameters}
    return {column: bindparam(name) for column, name in named.items()}


def _upsert_statement(insert):
    statement = insert(_ANSWERS).values(
        _bound(value="new_value", updated_by="member", updated_at="now")
    )
    changed = {name: statement.excluded[name] for name in ("value", "updated_by", "updated_at")}
    return statement.on_conflict_do_update(index_elements=["deal_id", "key"], set_=changed)


_UPSERT = per_dialect(_upsert_statement)
_RECORD = insert(_CHANGES).values(
    _bound(old_value="old_value", new_value="new_value", changed_by="member", changed_at="now")
)
_TOUCH = (
    update(_DEALS).where(_DEALS.c.id == bindparam("the_deal")).values(updated_at=bindparam("now"))
)
# The statements per dialect. On PostgreSQL the three writes are one statement (data-modifying
# WITH queries): one round trip to the server instead of three, on every accepted answer.
_SAVE = {
    "postgresql": [_TOUCH.add_cte(_UPSERT["postgresql"].cte("saved"), _RECORD.cte("recorded"))],
    "sqlite": [_UPSERT["sqlite"], _RECORD, _TOUCH],
}
_DELETE_AND_RECORD = {
    "postgresql": [_TOUCH.add_cte(_DELETE.cte("deleted"), _RECORD.cte("recorded"))],
    "sqlite": [_DELETE, _RECORD, _TOUCH],
}


def get_answers(session: Session, *, deal_id: int) -> dict[str, Any]:
    """Return a deal's answers by key, in the order they were first given.

    Args:
        session: The open session.
        deal_id: The deal.

    Returns:
        The JSON values by field/checklist id (a new dict); empty for an unknown deal.
    """
    return dict(session.connection().execute(_ALL, {"deal_id": deal_id}).all())


def save_answer(
    session: Session,
    *,
    deal_id: int,
    key: str,
    value: Any,
    member_id: int,
    now: datetime,
    answers: dict[str, Any] | None = None,
) -> bool:
    """Insert or update one answer; on a real change, record it and touch the deal.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        key: The playbook field or checklist id.
        value: A JSON-serialisable value; None means "no answer" (same as ``delete_answer``).
        member_id: Who answered.
        now: When (timezone-aware).
        answers: The deal's answers as the caller read them in this transaction: the old
            value is taken from there (no read) and the change is applied to them. Without,
            the stored answers are read first.

    Returns:
        Whether the stored value changed.

    Raises:
        NotFoundError: If there is no such deal.
    """
    if value is None:
        return delete_answer(
            session, deal_id=deal_id, key=key, member_id=member_id, now=now, answers=answers
        )
    deal = require(session, Deal, deal_id)
    session.flush()  # rows these statements refer to (a new deal, a member) go in first
    answers = answers if answers is not None else get_answers(session, deal_id=deal_id)
    old = answers.get(key)
    if old is not None and _same_json(old, value):
        return False
    write = {"old_value": old, "new_value": value, "member": member_id, "now": now}
    _change(session, deal, key, write, _SAVE)
    answers[key] = copy.deepcopy(value)
    return True


def delete_answer(
    session: Session,
    *,
    deal_id: int,
    key: str,
    member_id: int,
    now: datetime,
    answers: dict[str, Any] | None = None,
) -> bool:
    """Remove one answer, recording the removal (new value None) and touching the deal.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        key: The playbook field or checklist id.
        member_id: Who removed it.
        now: When (timezone-aware).
        answers: As for ``save_answer``.

    Returns:
        Whether there was an answer to remove.

    Raises:
        NotFoundError: If there is no such deal.
    """
    deal = require(session, Deal, deal_id)
    session.flush()  # rows these statements refer to (a new deal, a member) go in first
    answers = answers if answers is not None else get_answers(session, deal_id=deal_id)
    if key not in answers:
        return False
    write = {"old_value": answers.pop(key), "new_value": None, "member": member_id, "now": now}
    _change(session, deal, key, write, _DELETE_AND_RECORD)
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


def _same_json(old: Any, new: Any) -> bool:
    # Compare as JSON so that e.g. True and 1, or 1 and 1.0, count as different values.
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def _change(
    session: Session, deal: Deal, key: str, write: dict[str, Any], statements: dict[str, list]
) -> None:
    """Write the answer, record the change and touch the deal: the dialect's ``statements``."""
    connection = session.connection()
    params = {"the_deal": deal.id, "the_key": key, **write}
    for statement in statements[connection.dialect.name]:
        connection.execute(statement, params)
    set_committed_value(deal, "updated_at", write["now"])  # the loaded deal says so too
