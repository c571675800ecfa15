"""Answers to playbook fields and checklist items, with their history."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.errors import NotFoundError
from storage.models import Answer, AnswerChange, Deal


def get_answers(session: Session, *, deal_id: int) -> dict[str, Any]:
    """Return a deal's answers by key (copies: mutating them changes nothing stored).

    Args:
        session: The open session.
        deal_id: The deal.

    Returns:
        The JSON values by field/checklist id; empty for an unknown deal.
    """
    # Columns, not ORM objects: each value is decoded afresh from its JSON (so it is already a
    # copy), and the hot path of every question skips the identity map.
    statement = (
        select(Answer.key, Answer.value).where(Answer.deal_id == deal_id).order_by(col(Answer.id))
    )
    return dict(session.exec(statement).all())


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
    answer = _get_answer(session, deal_id=deal_id, key=key)
    old_value = None if answer is None else answer.value
    if answer is not None and _same_json(old_value, value):
        return False
    if answer is None:
        answer = Answer(deal_id=deal_id, key=key, value=value, updated_by=member_id)
    answer.value = copy.deepcopy(value)
    answer.updated_by = member_id
    answer.updated_at = now
    session.add(answer)
    _record_change(session, deal, key, old_value, value, member_id, now)
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
    answer = _get_answer(session, deal_id=deal_id, key=key)
    if answer is None:
        return False
    old_value = answer.value
    session.delete(answer)
    _record_change(session, deal, key, old_value, None, member_id, now)
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


def _get_answer(session: Session, *, deal_id: int, key: str) -> Answer | None:
    statement = select(Answer).where(Answer.deal_id == deal_id, Answer.key == key)
    return session.exec(statement).first()


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
    assert deal.id is not None
    change = AnswerChange(
        deal_id=deal.id,
        key=key,
        old_value=copy.deepcopy(old_value),
        new_value=copy.deepcopy(new_value),
        changed_by=member_id,
        changed_at=now,
    )
    session.add(change)
    deal.updated_at = now
    session.flush()
