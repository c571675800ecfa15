"""Teams and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from storage.errors import require
from storage.models import Member, Team

MEMBER_CHANGEABLE = frozenset({"language", "timezone", "role", "active", "display_name"})


def create_team(session: Session, *, name: str, now: datetime) -> Team:
    """Add a team.

    Args:
        session: The open session (not committed here).
        name: The unique team name.
        now: Creation time (timezone-aware).

    Returns:
        The new team, flushed so its id is set.
    """
    team = Team(name=name, created_at=now)
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, *, team_id: int) -> Team | None:
    """Return the team with this id, or None."""
    return session.get(Team, team_id)


def get_team_by_name(session: Session, *, name: str) -> Team | None:
    """Return the team with this exact name, or None."""
    return session.exec(select(Team).where(Team.name == name)).first()


def add_member(
    session: Session,
    *,
    team_id: int,
    telegram_user_id: int,
    display_name: str,
    role: str,
    language: str,
    timezone: str,
    now: datetime,
) -> Member:
    """Add a Telegram user to a team.

    Args:
        session: The open session (not committed here).
        team_id: The team.
        telegram_user_id: The Telegram user id (64-bit); unique within the team.
        display_name: The name shown to teammates.
        role: "rep", "manager" or "admin".
        language: "zh" or "en".
        timezone: An IANA time zone name, e.g. "Asia/Shanghai".
        now: Creation time (timezone-aware).

    Returns:
        The new active member, flushed so its id is set.
    """
    member = Member(
        team_id=team_id,
        telegram_user_id=telegram_user_id,
        display_name=display_name,
        role=role,
        language=language,
        timezone=timezone,
        active=True,
        created_at=now,
    )
    session.add(member)
    session.flush()
    return member


def get_member(session: Session, *, member_id: int) -> Member | None:
    """Return the member with this id (active or not), or None."""
    return session.get(Member, member_id)


# Built once: every update a bot receives starts with this lookup, joined with the dialog
# state (storage/conversations.py, storage/turns.py).
ACTIVE_MEMBER = (
    select(Member)
    .where(Member.telegram_user_id == bindparam("telegram_user_id"), col(Member.active).is_(True))
    .order_by(col(Member.created_at).desc(), col(Member.id).desc())
)


def get_member_by_telegram_id(session: Session, *, telegram_user_id: int) -> Member | None:
    """Find the active membership of a Telegram user.

    Args:
        session: The open session.
        telegram_user_id: The Telegram user id.

    Returns:
        The active member; the most recently created one if the user is in several teams;
        None if there is none.
    """
    return session.exec(ACTIVE_MEMBER, params={"telegram_user_id": telegram_user_id}).first()


def list_memberships(session: Session, *, telegram_user_id: int) -> list[Member]:
    """A Telegram user's memberships in every team, active or removed."""
    statement = select(Member).where(Member.telegram_user_id == telegram_user_id)
    return list(session.exec(statement.order_by(col(Member.id))))


def get_team_member(session: Session, *, team_id: int, telegram_user_id: int) -> Member | None:
    """A Telegram user's membership in one team, active or removed."""
    statement = select(Member).where(
        Member.team_id == team_id, Member.telegram_user_id == telegram_user_id
    )
    return session.exec(statement).first()


def list_members(session: Session, *, team_id: int, role: str | None = None) -> list[Member]:
    """List a team's members (active or not), oldest first.

    Args:
        session: The open session.
        team_id: The team.
        role: Only members with this role, if given.

    Returns:
        The members ordered by id.
    """
    statement = select(Member).where(Member.team_id == team_id)
    if role is not None:
        statement = statement.where(Member.role == role)
    return list(session.exec(statement.order_by(col(Member.id))))


def list_all_managers(session: Session) -> list[Member]:
    """Active managers and admins of every team (who get daily digests)."""
    statement = (
        select(Member)
        .where(col(Member.active), col(Member.role).in_(("manager", "admin")))
        .order_by(col(Member.id))
    )
    return list(session.exec(statement))


def update_member(session: Session, *, member_id: int, **changes: Any) -> Member:
    """Change a member's language, timezone, role, active flag or display_name.

    Args:
        session: The open session (not committed here).
        member_id: The member.
        **changes: New values, by attribute name.

    Returns:
        The updated member.

    Raises:
        TypeError: For an attribute that cannot be changed.
        NotFoundError: If there is no such member.
    """
    unknown = set(changes) - MEMBER_CHANGEABLE
    if unknown:
        raise TypeError(f"cannot change member attributes: {', '.join(sorted(unknown))}")
    member = require(session, Member, member_id)
    for name, value in changes.items():
        setattr(member, name, value)
    session.flush()
    return member
