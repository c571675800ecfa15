"""Managers' digests: who got which day's digest, and the team data a digest is built from."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Row, Text, and_, bindparam, cast, false, func, or_, type_coerce, update
from sqlalchemy.types import NullType
from sqlmodel import Session, col, select

from storage.db import per_dialect
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
_RAW = NullType()  # no result processing: the driver's value as it is
# raw_decode: json.loads without its whitespace checks (stored JSON never starts with any).
_DECODE = json.JSONDecoder().raw_decode


def _claim_statement(insert):
    # One statement whatever the dialect; built once, values bound per call.
    return (
        insert(DigestRun.__table__)
        .values(
            member_id=bindparam("manager"),
            digest_date=bindparam("day"),
            state="claimed",
            claimed_by=bindparam("by"),
            claimed_at=bindparam("at"),
        )
        .on_conflict_do_nothing(index_elements=["member_id", "digest_date"])
        .returning(DigestRun.__table__.c.id)
    )


_CLAIMS = per_dialect(_claim_statement)
_EXISTING = select(col(DigestRun.id)).where(
    col(DigestRun.member_id) == bindparam("manager"),
    col(DigestRun.digest_date) == bindparam("day"),
)
_TAKE_OVER = (
    update(DigestRun)
    .where(
        col(DigestRun.member_id) == bindparam("manager"),
        col(DigestRun.digest_date) == bindparam("day"),
        col(DigestRun.state) == "claimed",
        col(DigestRun.claimed_at) < bindparam("abandoned_before"),
    )
    .values(claimed_by=bindparam("by"), claimed_at=bindparam("at"))
    .returning(col(DigestRun.id))
)


def claim_digest(
    session: Session, *, member_id: int, digest_date: date, instance: str, now: datetime
) -> int | None:
    """Take the job of sending one manager's digest for one day (once, across instances).

    A claim left by an instance that died is taken over after a timeout.

    Returns:
        The claimed run's id, or None if it was sent or is being sent elsewhere.
    """
    connection = session.connection()
    values = {"manager": member_id, "day": digest_date, "by": instance, "at": now}
    if connection.execute(_EXISTING, values).first() is None:
        # Insert only for a day without a run: this runs every tick, and PostgreSQL spends a
        # sequence number on every INSERT, even one that ON CONFLICT DO NOTHING skips.
        return connection.execute(_CLAIMS[connection.dialect.name], values).scalar()
    values["abandoned_before"] = now - CLAIM_TIMEOUT  # take it over if it was abandoned
    return connection.execute(_TAKE_OVER, values).scalar()


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


_LAST_SENT = select(func.max(col(DigestRun.sent_at))).where(
    col(DigestRun.member_id) == bindparam("manager"), col(DigestRun.state) == "sent"
)


def last_digest_at(session: Session, *, member_id: int) -> datetime | None:
    """When the member's previous digest went out ("changes since the last digest")."""
    return session.connection().execute(_LAST_SENT, {"manager": member_id}).scalar()


# The bulk reads' statements, built once (building one costs about as much as a small team's
# query); the team and the time come as parameters.
_TEAM = bindparam("team_id")


_DEALS = (
    select(*(Deal.__table__.c[name] for name in DIGEST_DEAL_COLUMNS))
    .where(col(Deal.team_id) == _TEAM)
    .order_by(col(Deal.number))
)
_MOVES = (
    select(
        StageChange.deal_id,
        StageChange.from_stage,
        StageChange.to_stage,
        StageChange.kind,
        StageChange.changed_at,
        StageChange.reason,
    )
    .join(Deal, col(Deal.id) == col(StageChange.deal_id))
    .where(col(Deal.team_id) == _TEAM, col(StageChange.changed_at) >= bindparam("since"))
    .order_by(col(StageChange.changed_at), col(StageChange.id))
)
# One max per member and table: each is a single probe of the (changed_by, changed_at) index,
# where grouping all the team's changes would read every one of them.
_ACTIVITY = select(
    Member.id,
    *(
        select(func.max(when)).where(who == col(Member.id)).scalar_subquery()
        for who, when in (
            (col(AnswerChange.changed_by), col(AnswerChange.changed_at)),
            (col(StageChange.changed_by), col(StageChange.changed_at)),
        )
    ),
).where(col(Member.team_id) == _TEAM)


def team_deals(session: Session, *, team_id: int) -> Iterator[Row]:
    """The team's deals by number, only the columns a digest reads (rows, not ORM objects:
    a team can have 100,000 deals). Streamed, for the caller to turn into its own objects."""
    return _streamed(session, _DEALS, {"team_id": team_id})


def open_deal_answers(
    session: Session, *, team_id: int, keys: Mapping[str, Collection[str]] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(deal_id, {key: value})`` of the team's open deals that have answers, by deal id.

    One deal at a time from one streamed query, so the caller never holds every deal's answers.

    Args:
        keys: if given, per stage id the only keys wanted of a deal at that stage (deals at
            other stages are left out).
    """
    wanted = None if keys is None else tuple((s, tuple(sorted(k))) for s, k in keys.items())
    dialect = session.get_bind().dialect.name
    rows = _streamed(session, _answers_statement(wanted, dialect), {"team_id": team_id})
    for deal_id, answers in groupby(rows, key=itemgetter(0)):
        yield deal_id, {key: _json(text) for _, key, text in answers}


@lru_cache(maxsize=8)
def _answers_statement(keys: tuple[tuple[str, tuple[str, ...]], ...] | None, dialect: str):
    # The raw stored value, decoded by _json: JSON columns decode each value through several
    # layers. PostgreSQL: jsonb as text. SQLite: as stored, where a JSON column (NUMERIC
    # affinity) keeps bare numbers as numbers; a CAST to TEXT would round floats to 15 digits.
    if dialect == "postgresql":
        value = cast(col(Answer.value), Text)
    else:
        value = type_coerce(col(Answer.value), _RAW)
    statement = (
        select(Answer.deal_id, Answer.key, value)
        .join(Deal, col(Deal.id) == col(Answer.deal_id))
        .where(col(Deal.team_id) == _TEAM, col(Deal.status) == "open")
        .order_by(col(Deal.id))
    )
    if keys is None:
        return statement
    wanted = [
        and_(col(Deal.stage_id) == stage_id, col(Answer.key).in_(stage_keys))
        for stage_id, stage_keys in keys
        if stage_keys
    ]
    return statement.where(or_(false(), *wanted))


def team_moves_since(session: Session, *, team_id: int, since: datetime) -> list[Row]:
    """The team's stage changes from ``since`` on, oldest first."""
    return session.connection().execute(_MOVES, {"team_id": team_id, "since": since}).all()


def last_activity_by_member(session: Session, *, team_id: int) -> dict[int, datetime]:
    """Each member's newest answer or stage change."""
    found: dict[int, datetime] = {}
    for member_id, *times in session.connection().execute(_ACTIVITY, {"team_id": team_id}):
        known = [at for at in map(_aware, times) if at is not None]
        if known:
            found[member_id] = max(known)
    return found


def _json(stored: str | float) -> Any:
    """A stored JSON text (json.dumps's, or PostgreSQL's jsonb::text) decoded; SQLite hands
    bare numbers back as numbers."""
    return _DECODE(stored)[0] if isinstance(stored, str) else stored


def _streamed(session: Session, statement, params: dict[str, Any]) -> Iterator[Row]:
    """Rows fetched in batches rather than all at once (a server-side cursor on PostgreSQL).

    Run on the session's connection: plain rows, without the ORM's result handling.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # A cursor is planned to return its first tenth fast: for a team's answers that means
        # walking every deal of every team in id order, far slower when all are read, as here.
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1")
    result = connection.execute(statement.execution_options(yield_per=STREAM_BATCH), params)
    return chain.from_iterable(result.partitions())  # a batch at a time: less per row


def _aware(value: datetime | None) -> datetime | None:
    """func.max bypasses the column type on SQLite, which hands back naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
