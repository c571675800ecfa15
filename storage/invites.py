"""One-time invite codes that let a Telegram user join a team.

The database keeps each code's SHA-256 only: a copy of the database (a backup, another user
of the host) gives nobody a way into a team. A code is 96 random bits, so a hash without salt
cannot be reversed by guessing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.models import Invite

INVITE_TTL = timedelta(days=7)


def create_invite(
    session: Session,
    *,
    team_id: int,
    role: str,
    now: datetime,
    created_by: int | None = None,
    ttl: timedelta = INVITE_TTL,
) -> str:
    """Make a fresh code for joining ``team_id`` as ``role``.

    Args:
        session: The open session (not committed here).
        team_id: The team to join.
        role: "rep" or "manager".
        now: Creation time (timezone-aware).
        created_by: The member who made it (None from the command line).
        ttl: How long the code stays valid.

    Returns:
        The code, to show once (it is not kept); URL-safe, so it fits a
        ``t.me/<bot>?start=<code>`` link.
    """
    code = secrets.token_urlsafe(12)
    invite = Invite(
        code_hash=hash_code(code),
        team_id=team_id,
        role=role,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    session.flush()
    return code


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def redeem_invite(session: Session, *, code: str, now: datetime) -> Invite | None:
    """Use up a valid code; a code works once, until it expires.

    The conditional UPDATE makes two users racing for one code get one winner.

    Returns:
        The invite, or None if the code is unknown, used or expired.
    """
    hashed = hash_code(code)
    claimed = session.execute(
        update(Invite)
        .where(
            col(Invite.code_hash) == hashed,
            col(Invite.used_at).is_(None),
            col(Invite.expires_at) > now,
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        return None
    return session.exec(select(Invite).where(Invite.code_hash == hashed)).one()


def set_invite_user(session: Session, *, invite_id: int, member_id: int) -> None:
    """Record which member an invite created."""
    invite = session.get(Invite, invite_id)
    if invite is not None:
        invite.used_by = member_id
        session.flush()
