"""The group chat linked to each team."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from storage.models import TeamGroup


def link_group(
    session: Session, *, team_id: int, chat_id: int, title: str, member_id: int, now: datetime
) -> TeamGroup:
    """Make ``chat_id`` the team's group (replacing an earlier one; a group serves one team)."""
    for other in session.exec(select(TeamGroup).where(TeamGroup.chat_id == chat_id)):
        session.delete(other)
    session.flush()
    group = session.get(TeamGroup, team_id) or TeamGroup(team_id=team_id, chat_id=chat_id)
    group.chat_id, group.title, group.removed_at = chat_id, title, None
    group.linked_by, group.linked_at = member_id, now
    session.add(group)
    session.flush()
    return group


def unlink_group(session: Session, *, team_id: int, chat_id: int) -> bool:
    """End the team's link to ``chat_id``; False if the group is not the team's."""
    group = session.get(TeamGroup, team_id)
    if group is None or group.chat_id != chat_id:
        return False
    session.delete(group)
    session.flush()
    return True


def get_team_group(session: Session, *, team_id: int) -> TeamGroup | None:
    """The team's group, or None when it has none or the bot was removed from it."""
    group = session.get(TeamGroup, team_id)
    return group if group is not None and group.removed_at is None else None


def get_group_by_chat(session: Session, *, chat_id: int) -> TeamGroup | None:
    return session.exec(select(TeamGroup).where(TeamGroup.chat_id == chat_id)).first()


def move_group(session: Session, *, old_chat_id: int, new_chat_id: int) -> TeamGroup | None:
    """Follow a group that became a supergroup (it gets a new chat id)."""
    group = get_group_by_chat(session, chat_id=old_chat_id)
    if group is not None:
        group.chat_id = new_chat_id
        session.flush()
    return group


def mark_group_removed(session: Session, *, chat_id: int, now: datetime) -> TeamGroup | None:
    """Stop posting to a group the bot was removed from.

    Returns:
        The group if this call removed it, None if it was unknown or removed before (so the
        managers are told once).
    """
    group = get_group_by_chat(session, chat_id=chat_id)
    if group is None or group.removed_at is not None:
        return None
    group.removed_at = now
    session.flush()
    return group
