"""Managers' digests: who got which day's digest, and the team data a digest is built from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Answer, AnswerChange, Deal, DigestRun, Member, StageChange
from storage.nudges import CLAIM_TIMEOUT


def claim_digest(
    session: Session, *, member_id: int, digest_date: date, instance: str, now: datetime
) -> DigestRun | None:
    """Take the job of sending one manager's digest for one day (once, across instances).

    A claim left by an instance that died is taken over after a timeout.

    Returns:
        The claimed run, or None if it was sent or is being sent elsewhere.
    """
    existing = session.exec(
        select(DigestRun).where(
            DigestRun.member_id == member_id, DigestRun.digest_date == digest_date
        )
    ).first()
    if existing is None:
        try:
            with session.begin_nested():
                run = DigestRun(
                    member_id=member_id,
                    digest_date=digest_date,
                    claimed_by=instance,
                    claimed_at=now,
                )
                session.add(run)
            return run
        except IntegrityError:
            return None  # another instance claimed it at the same moment
    taken = session.execute(
        update(DigestRun)
        .where(
            col(DigestRun.id) == existing.id,
            col(DigestRun.state) == "claimed",
            col(DigestRun.claimed_at) < now - CLAIM_TIMEOUT,
        )
        .values(claimed_by=instance, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return existing if taken.rowcount == 1 else None


def finish_digest(session: Session, *, run_id: int, now: datetime) -> None:
    session.execute(
        update(DigestRun)
        .where(col(DigestRun.id) == run_id)
        .values(state="sent", sent_at=now)
        .execution_options(synchronize_session=False)
    )


def release_digest(session: Session, *, run_id: int) -> None:
    """Give up a claim (the send failed): the next tick tries again."""
    run = session.get(DigestRun, run_id)
    if run is not None and run.state == "claimed":
        session.delete(run)
        session.flush()


def last_digest_at(session: Session, *, member_id: int) -> datetime | None:
    """When the member's previous digest went out ("changes since the last digest")."""
    statement = select(func.max(col(DigestRun.sent_at))).where(
        DigestRun.member_id == member_id, DigestRun.state == "sent"
    )
    return session.exec(statement).one()


def list_team_deals(session: Session, *, team_id: int) -> list[Deal]:
    statement = select(Deal).where(Deal.team_id == team_id).order_by(col(Deal.number))
    return list(session.exec(statement))


def answers_of_deals(session: Session, *, deal_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Answers of many deals in one query: ``{deal_id: {key: value}}``."""
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    for chunk in _chunks(list(deal_ids)):
        statement = select(Answer.deal_id, Answer.key, Answer.value).where(
            col(Answer.deal_id).in_(chunk)
        )
        for deal_id, key, value in session.exec(statement):
            found[deal_id][key] = value
    return found


def stage_changes_since(session: Session, *, team_id: int, since: datetime) -> list[StageChange]:
    statement = (
        select(StageChange)
        .join(Deal, col(Deal.id) == col(StageChange.deal_id))
        .where(col(Deal.team_id) == team_id, col(StageChange.changed_at) >= since)
        .order_by(col(StageChange.changed_at), col(StageChange.id))
    )
    return list(session.exec(statement))


def last_activity_by_member(session: Session, *, team_id: int) -> dict[int, datetime]:
    """Each member's newest answer or stage change."""
    latest: dict[int, datetime] = {}
    for who, when in (
        (AnswerChange.changed_by, AnswerChange.changed_at),
        (StageChange.changed_by, StageChange.changed_at),
    ):
        statement = (
            select(who, func.max(when))
            .join(Member, col(Member.id) == col(who))
            .where(col(Member.team_id) == team_id)
            .group_by(who)
        )
        for member_id, at in session.exec(statement):
            at = _aware(at)
            if at is not None and (member_id not in latest or at > latest[member_id]):
                latest[member_id] = at
    return latest


def _aware(value: datetime | None) -> datetime | None:
    """func.max bypasses the column type on SQLite, which hands back naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _chunks(items: list[int], size: int = 900):
    """SQLite allows ~1000 bound parameters per statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
