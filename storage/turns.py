"""What every update begins with: its claim, and the sender's member with its dialog state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, select, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from storage.conversations import MEMBER_AND_STATE, get_member_and_state
from storage.models import Member
from storage.updates import CLAIMS, claim_update


def _claim_and_member_statement() -> Any:
    """PostgreSQL: both in one statement, the claim as a data-modifying WITH query.

    One row whatever is found: the claim's count (0: handled already), then the member's
    columns and its state, NULL when there is no active member.
    """
    claimed = CLAIMS["postgresql"].cte("claimed")
    found = MEMBER_AND_STATE.subquery("found")  # its FOR NO KEY UPDATE stays inside
    one_row = select(literal_column("1")).subquery("turn")
    return (
        select(
            select(func.count()).select_from(claimed).scalar_subquery(),
            aliased(Member, found),
            found.c.state,
        )
        .select_from(one_row.outerjoin(found, true()))
        .add_cte(claimed)
    )


# Built once: it begins every update a bot receives.
_CLAIM_AND_MEMBER = _claim_and_member_statement()


@dataclass(frozen=True)
class TurnStart:
    """How an update begins.

    Attributes:
        claimed: False if the update was handled already (a redelivery): nothing else to do.
        member: the sender's active member (as ``get_member_by_telegram_id``), None if none.
        state: the member's dialog state (a fresh copy), None if it has none yet.
    """

    claimed: bool
    member: Member | None
    state: dict[str, Any] | None


def start_turn(
    session: Session, *, update_id: int | None, telegram_user_id: int, now: datetime
) -> TurnStart:
    """Claim the update (``claim_update``; None: nothing to claim) and read the sender's
    member and state, holding the member's row (``get_member_and_state``).

    On PostgreSQL one round trip, not two: every update starts here.
    """
    if update_id is not None and session.get_bind().dialect.name == "postgresql":
        params = {"update_id": update_id, "now": now, "telegram_user_id": telegram_user_id}
        claimed, member, state = session.execute(_CLAIM_AND_MEMBER, params).one()
        return TurnStart(claimed=claimed > 0, member=member, state=state)
    if update_id is not None and not claim_update(session, update_id=update_id, now=now):
        return TurnStart(claimed=False, member=None, state=None)
    member, state = get_member_and_state(session, telegram_user_id=telegram_user_id)
    return TurnStart(claimed=True, member=member, state=state)
