"""Reps' requests to move a blocked deal on anyway, decided by a manager."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from storage.models import AdvanceRequest


def create_advance_request(
    session: Session,
    *,
    deal_id: int,
    requested_by: int,
    from_stage: str,
    to_stage: str,
    reason: str,
    now: datetime,
) -> AdvanceRequest:
    request = AdvanceRequest(
        deal_id=deal_id,
        requested_by=requested_by,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        created_at=now,
    )
    session.add(request)
    session.flush()
    return request


def get_advance_request(session: Session, *, request_id: int) -> AdvanceRequest | None:
    return session.get(AdvanceRequest, request_id)


def decide_advance_request(
    session: Session, *, request_id: int, approve: bool, member_id: int, now: datetime
) -> AdvanceRequest | None:
    """Record a manager's decision if none was made yet (the first decision counts).

    Returns:
        The decided request, or None if it was already decided or does not exist.
    """
    decided = session.execute(
        update(AdvanceRequest)
        .where(col(AdvanceRequest.id) == request_id, col(AdvanceRequest.status) == "pending")
        .values(status="approved" if approve else "rejected", decided_by=member_id, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if decided.rowcount != 1:
        return None
    request = session.get(AdvanceRequest, request_id)
    session.refresh(request)
    return request
