"""Managers' digests: who got which day's digest, and the team data a digest is built from."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Row, Text, and_, cast, false, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Answer, AnswerChange, Deal, DigestRun, Member, StageChange
from storage.nudges import CLAIM_TIMEOUT

# The deal columns a digest reads (a DealSnapshot's, but the answers).
DIGEST_DEAL_COLUMNS = (
    "id",
    "number",
    "name",
    "customer",
    "owner_id",
    "stage_id",
    "status",
    "amount_minor",
    "expected_close",
    "created_at",
    "updated_at",
    "paused_until",
    "lost_reason",
)
STREAM_BATCH = 2_000
# raw_decode: json.loads without its whitespace checks (stored JSON never starts with any).
_DECODE = json.JSONDecoder().raw_decode


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


def team_deals(session: Session, *, team_id: int) -> Iterator[Row]:
    """The team's deals by number, only the columns a digest reads (rows, not ORM objects:
    a team can have 100,000 deals). Streamed, for the caller to turn into its own objects."""
    statement = (
        select(*(Deal.__table__.c[name] for name in DIGEST_DEAL_COLUMNS))
        .where(col(Deal.team_id) == team_id)
        .order_by(col(Deal.number))
    )
    return _streamed(session, statement)


def open_deal_answers(
    session: Session, *, team_id: int, keys: Mapping[str, Collection[str]] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(deal_id, {key: value})`` of the team's open deals that have answers, by deal id.

    One deal at a time from one streamed query, so the caller never holds every deal's answers.

    Args:
        keys: if given, per stage id the only keys wanted of a deal at that stage (deals at
            other stages are left out).
    """
    # The JSON text, decoded below: JSON columns decode each value through several layers.
    value = cast(col(Answer.value), Text)
    statement = (
        select(Answer.deal_id, Answer.key, value)
        .join(Deal, col(Deal.id) == col(Answer.deal_id))
        .where(col(Deal.team_id) == team_id, col(Deal.status) == "open")
        .order_by(col(Deal.id))
    )
    if keys is not None:
        wanted = [
            and_(col(Deal.stage_id) == stage_id, col(Answer.key).in_(sorted(stage_keys)))
            for stage_id, stage_keys in keys.items()
            if stage_keys
        ]
        statement = statement.where(or_(false(), *wanted))
    for deal_id, rows in groupby(_streamed(session, statement), key=itemgetter(0)):
        yield deal_id, {key: _json(text) for _, key, text in rows}


def team_moves_since(session: Session, *, team_id: int, since: datetime) -> list[Row]:
    """The team's stage changes from ``since`` on, oldest first."""
    statement = (
        select(
            StageChange.deal_id,
            StageChange.from_stage,
            StageChange.to_stage,
            StageChange.kind,
            StageChange.changed_at,
            StageChange.reason,
        )
        .join(Deal, col(Deal.id) == col(StageChange.deal_id))
        .where(col(Deal.team_id) == team_id, col(StageChange.changed_at) >= since)
        .order_by(col(StageChange.changed_at), col(StageChange.id))
    )
    return list(session.execute(statement))


def last_activity_by_member(session: Session, *, team_id: int) -> dict[int, datetime]:
    """Each member's newest answer or stage change.

    One ``max`` per member and table: each is a single probe of the (changed_by, changed_at)
    index, where grouping all the team's changes would read every one of them.
    """
    latest = [
        select(func.max(when)).where(who == col(Member.id)).scalar_subquery()
        for who, when in (
            (col(AnswerChange.changed_by), col(AnswerChange.changed_at)),
            (col(StageChange.changed_by), col(StageChange.changed_at)),
        )
    ]
    statement = select(Member.id, *latest).where(col(Member.team_id) == team_id)
    found: dict[int, datetime] = {}
    for member_id, *times in session.execute(statement):
        known = [at for at in map(_aware, times) if at is not None]
        if known:
            found[member_id] = max(known)
    return found


def _json(text: str) -> Any:
    """A stored JSON text (as written by json.dumps, or PostgreSQL's jsonb::text) decoded."""
    return _DECODE(text)[0]


def _streamed(session: Session, statement) -> Iterator[Row]:
    """Rows fetched in batches rather than all at once (a server-side cursor on PostgreSQL)."""
    return iter(session.execute(statement.execution_options(yield_per=STREAM_BATCH)))


def _aware(value: datetime | None) -> datetime | None:
    """func.max bypasses the column type on SQLite, which hands back naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
