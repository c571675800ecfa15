"""Deals, their numbers and their stage history."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import bindparam, inspect, update
from sqlmodel import Session, col, select

from storage.answers import ANSWERS_OF_DEAL, get_answers
from storage.errors import NotFoundError, require
from storage.models import STAGE_CHANGE_KINDS, Deal, StageChange, Team


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET
"""Default of optional keyword arguments meaning "leave as is" (so that None can clear)."""

_STATUS_AFTER = {"won": "won", "lost": "lost", "reopen": "open"}


def create_deal(
    session: Session,
    *,
    team_id: int,
    owner_id: int,
    name: str,
    customer: str,
    stage_id: str,
    currency: str,
    now: datetime,
) -> Deal:
    """Open a deal with the team's next number and record the "open" stage change.

    The number is taken with ``UPDATE team ... RETURNING``, which locks the team row until the
    transaction ends, so concurrent creators never share a number.

    Args:
        session: The open session (not committed here).
        team_id: The team.
        owner_id: The member who owns the deal.
        name: The deal's name.
        customer: The customer's name.
        stage_id: The playbook stage the deal starts in.
        currency: ISO 4217 code of the deal's amount, e.g. "CNY".
        now: Creation time (timezone-aware).

    Returns:
        The new open deal, flushed so its id is set.

    Raises:
        NotFoundError: If there is no such team.
    """
    number = _take_deal_number(session, team_id=team_id)
    deal = Deal(
        team_id=team_id,
        number=number,
        name=name,
        customer=customer,
        owner_id=owner_id,
        stage_id=stage_id,
        status="open",
        currency=currency,
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    session.flush()
    assert deal.id is not None
    session.add(
        StageChange(
            deal_id=deal.id, to_stage=stage_id, kind="open", changed_by=owner_id, changed_at=now
        )
    )
    session.flush()
    return deal


def _take_deal_number(session: Session, *, team_id: int) -> int:
    statement = (
        update(Team)
        .where(col(Team.id) == team_id)
        .values(next_deal_number=col(Team.next_deal_number) + 1)
        .returning(col(Team.next_deal_number))
    )
    next_number = session.exec(statement).scalar_one_or_none()
    if next_number is None:
        raise NotFoundError(f"no team {team_id}")
    return next_number - 1


# Built once: Session.get builds and caches a query on every call, which costs about as much
# as the load itself (every answer loads its deal).
_DEAL_BY_ID = select(Deal).where(col(Deal.id) == bindparam("deal_id"))
# PostgreSQL: with its answers, which a turn reads next: one round trip to the server, not two.
_DEAL_AND_ANSWERS_BY_ID = _DEAL_BY_ID.add_columns(ANSWERS_OF_DEAL)


def get_deal(session: Session, *, deal_id: int) -> Deal | None:
    """Return the deal with this id, or None (a deal this session holds costs no query)."""
    known = session.identity_map.get(session.identity_key(Deal, deal_id))
    if known is not None and not inspect(known).expired:
        return known
    return session.execute(_DEAL_BY_ID, {"deal_id": deal_id}).scalar_one_or_none()


def get_deal_with_answers(session: Session, *, deal_id: int) -> tuple[Deal, dict] | None:
    """The deal with this id and its answers by key (as ``get_answers``), or None.

    On PostgreSQL in one statement: a chat turn reads both, and each statement is a round trip
    to the server.
    """
    if session.get_bind().dialect.name != "postgresql":
        deal = get_deal(session, deal_id=deal_id)
        return (deal, get_answers(session, deal_id=deal_id)) if deal is not None else None
    row = session.execute(_DEAL_AND_ANSWERS_BY_ID, {"deal_id": deal_id}).one_or_none()
    if row is None:
        return None
    deal, answers = row
    return deal, answers or {}


def get_deal_by_number(session: Session, *, team_id: int, number: int) -> Deal | None:
    """Return the team's deal with this short number, or None."""
    statement = select(Deal).where(Deal.team_id == team_id, Deal.number == number)
    return session.exec(statement).first()


def list_deals(
    session: Session,
    *,
    team_id: int,
    owner_id: int | None = None,
    statuses: Iterable[str] | None = ("open",),
) -> list[Deal]:
    """List a team's deals, most recently updated first.

    Args:
        session: The open session.
        team_id: The team.
        owner_id: Only this member's deals, if given.
        statuses: Only deals with one of these statuses; None for all.

    Returns:
        The deals.
    """
    statement = select(Deal).where(Deal.team_id == team_id)
    if owner_id is not None:
        statement = statement.where(Deal.owner_id == owner_id)
    if statuses is not None:
        statement = statement.where(col(Deal.status).in_(list(statuses)))
    statement = statement.order_by(col(Deal.updated_at).desc(), col(Deal.id).desc())
    return list(session.exec(statement))


def set_deal_attributes(
    session: Session,
    *,
    deal_id: int,
    now: datetime,
    amount_minor: int | None | _Unset = UNSET,
    expected_close: date | None | _Unset = UNSET,
    outside_target: bool | _Unset = UNSET,
    outside_target_reason: str | None | _Unset = UNSET,
    paused_until: date | None | _Unset = UNSET,
    pause_reason: str | None | _Unset = UNSET,
) -> Deal:
    """Set the given deal columns (omitted ones stay; None clears) and touch updated_at.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        now: Update time (timezone-aware).
        amount_minor: The amount in minor currency units (cents/fen).
        expected_close: The expected closing date.
        outside_target: Whether the customer is outside the target group.
        outside_target_reason: Why it is.
        paused_until: No stale or gap nudges until this day (None: not paused).
        pause_reason: Why the deal is paused.

    Returns:
        The updated deal.

    Raises:
        NotFoundError: If there is no such deal.
    """
    deal = require(session, Deal, deal_id)
    changes = {
        "amount_minor": amount_minor,
        "expected_close": expected_close,
        "outside_target": outside_target,
        "outside_target_reason": outside_target_reason,
        "paused_until": paused_until,
        "pause_reason": pause_reason,
    }
    for name, value in changes.items():
        if value is not UNSET:
            setattr(deal, name, value)
    deal.updated_at = now
    session.flush()
    return deal


def change_stage(
    session: Session,
    *,
    deal_id: int,
    to_stage: str,
    kind: str,
    member_id: int,
    now: datetime,
    reason: str | None = None,
    override: bool = False,
) -> StageChange:
    """Move a deal to a stage and record the move.

    "won" and "lost" set the status (a lost deal keeps ``reason`` as its lost_reason),
    "reopen" sets it back to open, and so does "back" from a won deal; "open" and "advance"
    leave the status alone.

    Args:
        session: The open session (not committed here).
        deal_id: The deal.
        to_stage: The stage the deal is in afterwards.
        kind: One of "open", "advance", "back", "lost", "won", "reopen".
        member_id: Who moved it.
        now: When (timezone-aware).
        reason: The override or lost reason.
        override: Whether the exit checklist was overridden.

    Returns:
        The recorded stage change.

    Raises:
        ValueError: For an unknown kind.
        NotFoundError: If there is no such deal.
    """
    if kind not in STAGE_CHANGE_KINDS:
        raise ValueError(f"unknown stage change kind {kind!r}")
    deal = require(session, Deal, deal_id)
    change = StageChange(
        deal_id=deal_id,
        from_stage=deal.stage_id,
        to_stage=to_stage,
        kind=kind,
        changed_by=member_id,
        changed_at=now,
        reason=reason,
        override=override,
    )
    deal.stage_id = to_stage
    if kind in _STATUS_AFTER:
        deal.status = _STATUS_AFTER[kind]
        deal.lost_reason = reason if kind == "lost" else None
    elif kind == "back" and deal.status == "won":
        deal.status = "open"  # a won deal moved back is being worked on again
    deal.updated_at = now
    session.add(change)
    session.flush()
    return change


def list_stage_changes(session: Session, *, deal_id: int) -> list[StageChange]:
    """Return a deal's stage changes, oldest first."""
    statement = (
        select(StageChange)
        .where(StageChange.deal_id == deal_id)
        .order_by(col(StageChange.changed_at), col(StageChange.id))
    )
    return list(session.exec(statement))
