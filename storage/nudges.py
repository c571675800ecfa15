"""Nudge rows: scheduled, claimed by a scheduler tick, sent, snoozed or muted.

The rows are the truth; the scheduler only ticks. Claiming uses ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two bot instances on one database never take the same row; SQLite runs one
writer at a time, which gives the same guarantee there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, exists, func, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Answer, Deal, Member, Nudge, NudgeMute

# A claim older than this belongs to an instance that died while sending: take it over.
CLAIM_TIMEOUT = timedelta(minutes=10)


def is_muted(session: Session, *, deal_id: int, kind: str, key: str = "") -> bool:
    statement = select(NudgeMute.id).where(
        NudgeMute.deal_id == deal_id, NudgeMute.kind == kind, NudgeMute.key == key
    )
    return session.exec(statement).first() is not None


def schedule_nudge(
    session: Session,
    *,
    member_id: int,
    deal_id: int,
    kind: str,
    due_at: datetime,
    now: datetime,
    key: str = "",
) -> Nudge | None:
    """Plan a nudge, replacing a pending one of the same kind for the deal.

    Returns:
        The new row, or None if the rep muted this kind of nudge for the deal or one is
        already live (being sent, or planned by another instance at the same moment).
    """
    if is_muted(session, deal_id=deal_id, kind=kind, key=key):
        return None
    drop_pending(session, deal_id=deal_id, kinds=(kind,), key=key)
    nudge = Nudge(
        member_id=member_id, deal_id=deal_id, kind=kind, key=key, due_at=due_at, created_at=now
    )
    try:
        with session.begin_nested():
            session.add(nudge)
    except IntegrityError:
        return None  # one is being sent right now, or another instance just planned it
    return nudge


def drop_pending(
    session: Session, *, deal_id: int, kinds: Iterable[str], key: str | None = None
) -> int:
    """Cancel a deal's pending nudges of some kinds (and one key, if given)."""
    conditions = [
        col(Nudge.deal_id) == deal_id,
        col(Nudge.kind).in_(list(kinds)),
        col(Nudge.state) == "pending",
    ]
    if key is not None:
        conditions.append(col(Nudge.key) == key)
    result = session.execute(
        update(Nudge)
        .where(*conditions)
        .values(state="dropped")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def claim_due_nudges(
    session: Session, *, now: datetime, instance: str, limit: int = 500
) -> list[Nudge]:
    """Take the due nudges (and ones a dead instance left claimed) for this instance.

    Args:
        session: The open session; commit soon after (until then other instances skip the
            claimed rows: they are locked on PostgreSQL, and SQLite has one writer).
        now: The tick's time.
        instance: A name for this process, recorded on the rows.
        limit: At most this many rows per tick.
    Returns:
        The claimed rows, oldest due first.
    """
    # Two queries, not one with OR, so each is served by its partial index.
    due = (col(Nudge.state) == "pending", col(Nudge.due_at) <= now)
    abandoned = (col(Nudge.state) == "claimed", col(Nudge.claimed_at) < now - CLAIM_TIMEOUT)
    ids: list[int] = []
    for conditions, order in ((due, Nudge.due_at), (abandoned, Nudge.claimed_at)):
        wanted = (
            select(Nudge.id)
            .where(*conditions)
            .order_by(col(order))
            .limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        )
        ids += list(session.exec(wanted)) if len(ids) < limit else []
    if not ids:
        return []
    session.execute(
        update(Nudge)
        .where(col(Nudge.id).in_(ids))
        .values(state="claimed", claimed_by=instance, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    statement = (
        select(Nudge)
        .where(col(Nudge.id).in_(ids))
        .order_by(col(Nudge.due_at))
        .execution_options(populate_existing=True)
    )
    return list(session.exec(statement))


# Built once, in Core on the table: these run once per batch sent, and building an ORM
# statement each time costs more than running it (no session state to synchronise anyway).
_NUDGE = Nudge.__table__
_MINE = (
    _NUDGE.c.id.in_(bindparam("ids", expanding=True)),
    _NUDGE.c.claimed_by == bindparam("instance"),
)
_FINISH = update(_NUDGE).where(*_MINE).values(state=bindparam("state"), sent_at=bindparam("at"))
_POSTPONE = (
    update(_NUDGE)
    .where(*_MINE)
    .values(state="pending", due_at=bindparam("due_at"), claimed_by=None, claimed_at=None)
)


def finish_nudges(
    session: Session,
    *,
    ids: Sequence[int],
    state: str,
    instance: str,
    now: datetime | None = None,
) -> None:
    """Mark nudges this instance claimed as sent (``now`` = when) or dropped."""
    if ids:
        at = now if state == "sent" else None
        session.execute(_FINISH, {"ids": list(ids), "instance": instance, "state": state, "at": at})


def postpone_nudges(
    session: Session, *, ids: Sequence[int], due_at: datetime, instance: str
) -> None:
    """Give nudges this instance claimed back, due later (quiet hours, the daily cap)."""
    if ids:
        session.execute(_POSTPONE, {"ids": list(ids), "instance": instance, "due_at": due_at})


# A sent batch on PostgreSQL: the UPDATE sets synchronous_commit = off for its own transaction
# and runs in autocommit, so recording it is one round trip, not BEGIN, SET, UPDATE, COMMIT.
_SENT_UNFLUSHED = text(
    "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE nudge SET state = 'sent', sent_at = :at FROM unflushed "
    "WHERE nudge.id = ANY(:ids) AND nudge.claimed_by = :instance"
)


def record_sent(engine: Engine, *, ids: Sequence[int], instance: str, now: datetime) -> None:
    """Mark nudges this instance claimed as sent, committed at once, without waiting for the
    disk on PostgreSQL (see ``defer_commit_flush`` for why that is safe)."""
    params = {"ids": list(ids), "instance": instance, "state": "sent", "at": now}
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            connection.execute(_FINISH, params)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(_SENT_UNFLUSHED, params)


def count_sent_since_each(session: Session, *, since: dict[int, datetime]) -> dict[int, int]:
    """Nudges already sent to each member since their own time (their local midnight, for the cap).

    One query per distinct time, not per member: reps in one time zone share their midnight.
    """
    members_at: dict[datetime, list[int]] = defaultdict(list)
    for member_id, moment in since.items():
        members_at[moment].append(member_id)
    counts = dict.fromkeys(since, 0)
    for moment, member_ids in members_at.items():
        statement = (
            select(Nudge.member_id, func.count(col(Nudge.id)))
            .where(
                col(Nudge.member_id).in_(member_ids),
                Nudge.state == "sent",
                col(Nudge.sent_at) >= moment,
            )
            .group_by(col(Nudge.member_id))
        )
        counts.update(session.exec(statement).all())
    return counts


def members_by_id(session: Session, *, ids: Iterable[int]) -> dict[int, Member]:
    """The members with these ids (active or not), in one query."""
    statement = select(Member).where(col(Member.id).in_(set(ids)))
    return {member.id: member for member in session.exec(statement)}


def deals_by_id(session: Session, *, ids: Iterable[int]) -> dict[int, Deal]:
    """The deals with these ids, in one query."""
    statement = select(Deal).where(col(Deal.id).in_(set(ids)))
    return {deal.id: deal for deal in session.exec(statement)}


def answers_by_deal(session: Session, *, deal_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each deal's answers by key, as ``get_answers`` returns them, in one query.

    Columns, not rows: the values are fresh copies, so mutating them changes nothing stored.
    """
    answers: dict[int, dict[str, Any]] = {deal_id: {} for deal_id in deal_ids}
    statement = (
        select(Answer.deal_id, Answer.key, Answer.value)
        .where(col(Answer.deal_id).in_(list(answers)))
        .order_by(col(Answer.id))
    )
    for deal_id, key, value in session.exec(statement):
        answers[deal_id][key] = value
    return answers


def get_nudge(session: Session, *, nudge_id: int) -> Nudge | None:
    return session.get(Nudge, nudge_id)


def snooze_nudge(session: Session, *, nudge: Nudge, due_at: datetime, now: datetime) -> Nudge:
    """Ask again later: a new pending row like the sent one."""
    return schedule_nudge(
        session,
        member_id=nudge.member_id,
        deal_id=nudge.deal_id,
        kind=nudge.kind,
        key=nudge.key,
        due_at=due_at,
        now=now,
    )


def mute_nudge(session: Session, *, nudge: Nudge, member_id: int, now: datetime) -> None:
    """ "Not relevant": no more nudges of this kind (and key) for the deal; recorded."""
    drop_pending(session, deal_id=nudge.deal_id, kinds=(nudge.kind,), key=nudge.key)
    try:
        with session.begin_nested():
            session.add(
                NudgeMute(
                    deal_id=nudge.deal_id,
                    kind=nudge.kind,
                    key=nudge.key,
                    member_id=member_id,
                    created_at=now,
                )
            )
    except IntegrityError:
        pass  # muted already (a second press)


def stale_deals(
    session: Session,
    *,
    now: datetime,
    today: date,
    stale_days: dict[str, int],
    after_id: int = 0,
    limit: int | None = None,
) -> list[Deal]:
    """Open, unpaused deals not updated for their stage's stale_after_days and not nudged since.

    Args:
        stale_days: days without an update after which a deal in each stage is stale.
        after_id, limit: one page, by deal id: the deals after ``after_id``, at most ``limit``.
    """
    overdue = or_(
        *(
            and_(col(Deal.stage_id) == stage, col(Deal.updated_at) < now - timedelta(days=days))
            for stage, days in stale_days.items()
        )
    )
    nudged_since = exists().where(
        col(Nudge.deal_id) == col(Deal.id),
        col(Nudge.kind) == "stale",
        col(Nudge.state) != "dropped",
        col(Nudge.created_at) >= col(Deal.updated_at),
    )
    muted = exists().where(col(NudgeMute.deal_id) == col(Deal.id), col(NudgeMute.kind) == "stale")
    statement = (
        select(Deal)
        .join(Member, col(Member.id) == col(Deal.owner_id))
        .where(
            col(Member.active),
            col(Deal.status) == "open",
            or_(col(Deal.paused_until).is_(None), col(Deal.paused_until) < today),
            overdue,
            ~nudged_since,
            ~muted,
            col(Deal.id) > after_id,
        )
        .order_by(col(Deal.id))
        .limit(limit)
    )
    return list(session.exec(statement))
