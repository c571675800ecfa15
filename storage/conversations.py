"""Where each member is in the dialog (one row per member)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.db import per_dialect
from storage.models import Conversation, Member
from storage.teams import ACTIVE_MEMBER

_CONVERSATIONS = Conversation.__table__
_TURN_END = ("deal_id", "question", "state", "updated_at")


def _upsert(insert):
    statement = insert(_CONVERSATIONS)
    excluded = {name: statement.excluded[name] for name in _TURN_END}
    return statement.on_conflict_do_update(index_elements=["member_id"], set_=excluded)


# Built once: these statements begin and end every chat turn.
_SAVE = per_dialect(_upsert)
# The user's active member (as get_member_by_telegram_id) with its dialog state, the member's
# row held: FOR NO KEY UPDATE, which rows referring to the member (their foreign keys take KEY
# SHARE) do not wait for.
MEMBER_AND_STATE = (
    ACTIVE_MEMBER.add_columns(_CONVERSATIONS.c.state)
    .outerjoin(_CONVERSATIONS, _CONVERSATIONS.c.member_id == Member.id)
    .limit(1)
    .with_for_update(of=Member, key_share=True)
)


def get_member_and_state(
    session: Session, *, telegram_user_id: int
) -> tuple[Member | None, dict[str, Any] | None]:
    """A Telegram user's active member and its dialog state, in one round trip.

    The member's row is held until the transaction ends, so two bot instances handling two
    quick messages of one member take turns instead of overwriting each other's state (a
    first message too, which has no conversation row to hold).

    Returns:
        The member as ``get_member_by_telegram_id`` finds it (None if there is none), and its
        dialog state (a fresh copy of the stored JSON; None if it has none yet).
    """
    row = session.execute(MEMBER_AND_STATE, {"telegram_user_id": telegram_user_id}).first()
    return (None, None) if row is None else (row[0], row[1])


def get_conversation(
    session: Session, *, member_id: int, lock: bool = False
) -> Conversation | None:
    """Return the member's conversation, or None.

    Args:
        lock: hold the row until the transaction ends, so two bot instances handling two
            quick messages of one member take turns instead of overwriting each other (a
            member's very first message has no row to hold yet: there the later one wins).
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
) -> None:
    """Insert or replace the member's conversation (one statement: it ends every turn).

    Args:
        session: The open session (not committed here).
        member_id: The member.
        deal_id: The deal in focus, if any.
        question: The field/checklist id being asked, if any.
        state: The dialog layer's opaque JSON dict (stored as JSON, so as a copy).
        now: When (timezone-aware).
    """
    values = {"deal_id": deal_id, "question": question, "state": state, "updated_at": now}
    connection = session.connection()
    session.flush()  # a deal or member created in this transaction goes in first
    connection.execute(_SAVE[connection.dialect.name], {"member_id": member_id, **values})
    loaded = session.identity_map.get(session.identity_key(Conversation, member_id))
    if loaded is not None:
        session.expire(loaded)  # read again if asked: the row is what was just written


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
