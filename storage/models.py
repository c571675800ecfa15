"""Database tables.

Every timestamp is stored timezone-aware in UTC (``UTCDateTime``), Telegram ids and money are
BIGINT, and answers / dialog state are JSON (JSONB on PostgreSQL). Nothing here knows about
Telegram objects or playbook classes: only ids and JSON values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

ROLES = ("rep", "manager", "admin")
LANGUAGES = ("zh", "en")
DEAL_STATUSES = ("open", "won", "lost")
STAGE_CHANGE_KINDS = ("open", "advance", "back", "lost", "won", "reopen")

# Deterministic constraint names, so later (batch) migrations can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that only accepts aware datetimes and returns UTC ones.

    SQLite has no time zones, so values are stored there as naive UTC and made aware on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        # The stored text parsed in one call: SQLAlchemy's own parse and then
        # process_result_value cost much more per value, and a digest reads a great many.
        return _utc_from_sqlite


def _utc_from_sqlite(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


JSONValue = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Team(SQLModel, table=True):
    """A sales team; deal numbers are counted per team."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    next_deal_number: int = Field(default=1, sa_column_kwargs={"server_default": text("1")})
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class Member(SQLModel, table=True):
    """A Telegram user's membership in a team."""

    __table_args__ = (
        UniqueConstraint("team_id", "telegram_user_id"),
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint(_in("language", LANGUAGES), name="language"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    telegram_user_id: int = Field(sa_type=BigInteger, index=True)
    display_name: str
    role: str = Field(default="rep", sa_type=String(16))
    language: str = Field(default="en", sa_type=String(8))
    timezone: str = Field(default="UTC", sa_type=String(64))
    active: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class Deal(SQLModel, table=True):
    """A sales opportunity walked through the playbook's stages."""

    __table_args__ = (
        UniqueConstraint("team_id", "number"),
        Index("ix_deal_team_id_status", "team_id", "status"),
        Index("ix_deal_owner_id_updated_at", "owner_id", "updated_at"),
        CheckConstraint(_in("status", DEAL_STATUSES), name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    number: int
    name: str
    customer: str
    owner_id: int = Field(foreign_key="member.id")
    stage_id: str = Field(sa_type=String(64))
    status: str = Field(default="open", sa_type=String(8))
    amount_minor: int | None = Field(default=None, sa_type=BigInteger)
    currency: str = Field(sa_type=String(3))
    expected_close: date | None = None
    lost_reason: str | None = None
    outside_target: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    outside_target_reason: str | None = None
    # Paused (e.g. the customer's budget cycle): no stale or gap nudges until this day.
    paused_until: date | None = None
    pause_reason: str | None = None
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class Answer(SQLModel, table=True):
    """The current value of one playbook field or checklist item of a deal."""

    __table_args__ = (UniqueConstraint("deal_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    key: str = Field(sa_type=String(64))
    value: Any = Field(sa_type=JSONValue, nullable=False)
    updated_by: int = Field(foreign_key="member.id")
    updated_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class AnswerChange(SQLModel, table=True):
    """Append-only history of answers; ``None`` means "no answer" (before or after)."""

    __tablename__ = "answer_change"
    __table_args__ = (
        Index("ix_answer_change_deal_id_key", "deal_id", "key"),
        # Digests ask for each member's latest change.
        Index("ix_answer_change_changed_by_at", "changed_by", "changed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    key: str = Field(sa_type=String(64))
    old_value: Any | None = Field(default=None, sa_type=JSONValue)
    new_value: Any | None = Field(default=None, sa_type=JSONValue)
    changed_by: int = Field(foreign_key="member.id")
    changed_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class DealNote(SQLModel, table=True):
    """What a rep wrote about a deal, kept word for word on its timeline: a visit note, or the
    words a typed answer came with beyond its value (``否，要看郑总那边技术评审``), then tied to
    the answer's ``field_key``."""

    __tablename__ = "deal_note"
    __table_args__ = (Index("ix_deal_note_deal_id_created_at", "deal_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    author_id: int = Field(foreign_key="member.id")
    text: str = Field(sa_type=Text)
    field_key: str | None = Field(default=None, sa_type=String(64))
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class StageChange(SQLModel, table=True):
    """Append-only history of a deal's stage and status moves."""

    __tablename__ = "stage_change"
    __table_args__ = (
        CheckConstraint(_in("kind", STAGE_CHANGE_KINDS), name="kind"),
        Index("ix_stage_change_changed_by_at", "changed_by", "changed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", index=True)
    from_stage: str | None = Field(default=None, sa_type=String(64))
    to_stage: str = Field(sa_type=String(64))
    kind: str = Field(sa_type=String(8))
    changed_by: int = Field(foreign_key="member.id")
    changed_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)
    reason: str | None = None
    override: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Conversation(SQLModel, table=True):
    """Where a member is in the dialog: the deal in focus, the open question, opaque state."""

    member_id: int = Field(
        primary_key=True,
        foreign_key="member.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    deal_id: int | None = Field(default=None, foreign_key="deal.id", ondelete="SET NULL")
    question: str | None = Field(default=None, sa_type=String(64))
    state: dict[str, Any] = Field(default_factory=dict, sa_type=JSONValue, nullable=False)
    updated_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


INVITE_ROLES = ("rep", "manager")
REQUEST_STATUSES = ("pending", "approved", "rejected")


class TeamGroup(SQLModel, table=True):
    """The team's group chat, which hears about stage changes and wins."""

    __tablename__ = "team_group"

    team_id: int = Field(
        primary_key=True,
        foreign_key="team.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    chat_id: int = Field(sa_type=BigInteger, unique=True)
    title: str = ""
    # Set when the bot was removed from the group: nothing is posted there any more.
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    linked_by: int = Field(foreign_key="member.id")
    linked_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class Invite(SQLModel, table=True):
    """A one-time code that lets a Telegram user join a team with a role. Only the code's
    SHA-256 is kept (storage/invites.py): the code itself is shown once, when it is made."""

    __table_args__ = (CheckConstraint(_in("role", INVITE_ROLES), name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(sa_type=String(64), unique=True)
    team_id: int = Field(foreign_key="team.id", ondelete="CASCADE")
    role: str = Field(sa_type=String(16))
    created_by: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_by: int | None = Field(default=None, foreign_key="member.id")
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ProcessedUpdate(SQLModel, table=True):
    """Telegram update ids already handled, so a redelivered update takes effect once."""

    __tablename__ = "processed_update"

    update_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    processed_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime, index=True)


class AdvanceRequest(SQLModel, table=True):
    """A rep's request to move a blocked deal on anyway; the first manager decision counts."""

    __tablename__ = "advance_request"
    __table_args__ = (CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE", index=True)
    requested_by: int = Field(foreign_key="member.id")
    from_stage: str = Field(sa_type=String(64))
    to_stage: str = Field(sa_type=String(64))
    reason: str
    status: str = Field(default="pending", sa_type=String(16))
    decided_by: int | None = Field(default=None, foreign_key="member.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


NUDGE_KINDS = ("gap", "stale", "date", "resume")
NUDGE_STATES = ("pending", "claimed", "sent", "dropped", "muted")
DIGEST_STATES = ("claimed", "sent")


class Nudge(SQLModel, table=True):
    """A reminder due to a rep; a scheduler tick claims due rows and sends them.

    ``key`` says which date a date reminder is about (a field id); empty for other kinds.
    """

    __table_args__ = (
        CheckConstraint(_in("kind", NUDGE_KINDS), name="kind"),
        CheckConstraint(_in("state", NUDGE_STATES), name="state"),
        # The tick's query: pending rows by due time, among millions of sent ones.
        Index(
            "ix_nudge_pending_due",
            "due_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_nudge_deal_id_kind", "deal_id", "kind"),
        # Claims left by an instance that died, found without scanning sent rows.
        Index(
            "ix_nudge_claimed_at",
            "claimed_at",
            postgresql_where=text("state = 'claimed'"),
            sqlite_where=text("state = 'claimed'"),
        ),
        # One live nudge per deal, kind and key, even with several instances planning at once.
        Index(
            "uq_nudge_live",
            "deal_id",
            "kind",
            "key",
            unique=True,
            postgresql_where=text("state IN ('pending', 'claimed')"),
            sqlite_where=text("state IN ('pending', 'claimed')"),
        ),
        Index("ix_nudge_member_id_sent_at", "member_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", ondelete="CASCADE")
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    kind: str = Field(sa_type=String(8))
    key: str = Field(default="", sa_type=String(64))
    due_at: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(default="pending", sa_type=String(8))
    claimed_by: str | None = Field(default=None, sa_type=String(64))
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class NudgeMute(SQLModel, table=True):
    """A rep said a kind of nudge is not relevant for a deal: it is not sent again."""

    __tablename__ = "nudge_mute"
    __table_args__ = (UniqueConstraint("deal_id", "kind", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", ondelete="CASCADE")
    kind: str = Field(sa_type=String(8))
    key: str = Field(default="", sa_type=String(64))
    member_id: int = Field(foreign_key="member.id")
    created_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)


class DigestRun(SQLModel, table=True):
    """One manager's digest for one local day: claimed before it is built, so it goes once."""

    __tablename__ = "digest_run"
    __table_args__ = (
        UniqueConstraint("member_id", "digest_date"),
        CheckConstraint(_in("state", DIGEST_STATES), name="state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", ondelete="CASCADE")
    digest_date: date
    state: str = Field(default="claimed", sa_type=String(8))
    claimed_by: str | None = Field(default=None, sa_type=String(64))
    claimed_at: datetime = Field(default_factory=_utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


OUTBOX_KINDS = ("send", "edit")


class OutboxMessage(SQLModel, table=True):
    """A message a chat turn wrote for Telegram, kept in the turn's own transaction.

    A ``send`` row is a new message (``message_id``: the one Telegram made of it, once sent);
    an ``edit`` row rewrites ``message_id``, or (None) the newest question sent to the chat.
    ``body`` holds the text (HTML), the buttons and whether the message asks a question.
    ``due_at``: when another instance may take the row over if it is still unsent (the writer
    sends it at once). ``done_at``: sent, or given up on for good; done rows are forgotten
    after a while.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("kind", OUTBOX_KINDS), name="kind"),
        Index("ix_outbox_chat_id_id", "chat_id", "id"),
        Index(
            "ix_outbox_due_at",
            "due_at",
            postgresql_where=text("done_at IS NULL"),
            sqlite_where=text("done_at IS NULL"),
        ),
        Index("ix_outbox_done_at", "done_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)
    kind: str = Field(default="send", sa_type=String(8))
    asks: bool = Field(default=False)
    body: dict[str, Any] = Field(sa_type=JSONValue)
    photo: bytes | None = Field(default=None, sa_type=LargeBinary)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
