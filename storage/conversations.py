"""Where each member is in the dialog (one row per member)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from storage.models import Conversation


def get_conversation(
    session: Session, *, member_id: int, lock: bool = False
) -> Conversation | None:
    """Return the member's conversation, or None.

    Args:
        lock: hold the row until the transaction ends, so two bot instances handling two
            quick messages of one member take turns instead of overwriting each other.
    """
    return session.get(Conversation, member_id, with_for_update=lock or None)


def save_conversation(
    session: Session,
    *,
    member_id: int,
    deal_id: int | None,
    question: str | None,
    state: dict[str, Any],
    now: datetime,
) -> Conversation:
    """Insert or replace the member's conversation.

    Args:
        session: The open session (not committed here).
        member_id: The member.
        deal_id: The deal in focus, if any.
        question: The field/checklist id being asked, if any.
        state: The dialog layer's opaque JSON dict (stored as a copy).
        now: When (timezone-aware).

    Returns:
        The stored conversation.
    """
    conversation = session.get(Conversation, member_id)
    if conversation is None:
        conversation = Conversation(member_id=member_id)
        session.add(conversation)
    conversation.deal_id = deal_id
    conversation.question = question
    conversation.state = copy.deepcopy(state)
    # The caller may have mutated the very dict it read, which the ORM would not notice.
    flag_modified(conversation, "state")
    conversation.updated_at = now
    session.flush()
    return conversation


def clear_conversation(session: Session, *, member_id: int) -> bool:
    """Delete the member's conversation.

    Args:
        session: The open session (not committed here).
        member_id: The member.

    Returns:
        Whether there was one.
    """
    conversation = session.get(Conversation, member_id)
    if conversation is None:
        return False
    session.delete(conversation)
    session.flush()
    return True
