"""The team's group chat: linking it, and the one message it gets per stage change.

Nothing else about deals is ever said in a group; deal commands there point to the private chat.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.dialog import render
from bot.dialog.access import MANAGING_ROLES
from bot.dialog.events import Incoming, Reply, Response, StageChanged
from bot.dialog.turn import Turn
from bot.dialog.writer import DialogConfig, escape
from flows.i18n import t
from storage.groups import (
    get_group_by_chat,
    get_team_group,
    link_group,
    mark_group_removed,
    move_group,
    unlink_group,
)
from storage.models import Member
from storage.teams import get_member, get_team, list_members


def group_event(
    session: Session, event: Incoming, member: Member | None, config: DialogConfig, now: datetime
) -> Response:
    """A command typed in a group; plain chatter never reaches the dialog.

    Commands for another bot (``/help@OtherBot``) and anything from people who have not
    joined a team are left alone.
    """
    command, _, addressee = (event.text or "").strip().split(" ")[0].lower().partition("@")
    mine = (config.bot_username or "").lower()
    if member is None or (addressee and addressee != mine):
        return Response()
    lang = member.language
    if command == "/setgroup":
        return _link(session, event, member, lang, now)
    if command == "/unsetgroup":
        return _unlink(session, event, member, lang)
    if command in ("/help", "/start") or command.startswith("/"):
        link = f"https://t.me/{config.bot_username}" if config.bot_username else ""
        return Response(replies=[Reply(t(lang, "group.private_only", link=link))])
    return Response()


def _link(session: Session, event: Incoming, member: Member, lang: str, now: datetime):
    if member.role not in MANAGING_ROLES:
        return Response(replies=[Reply(t(lang, "group.setgroup_managers_only"))])
    linked = get_group_by_chat(session, chat_id=event.chat_id)
    if linked is not None and linked.team_id != member.team_id:
        # A group serves one team, and stays that team's (even while the bot is out of it)
        # until one of its managers unlinks it: another team's manager cannot take it over.
        return Response(replies=[Reply(t(lang, "group.linked_elsewhere"))])
    link_group(
        session,
        team_id=member.team_id,
        chat_id=event.chat_id,
        title=event.chat_title[:128],
        member_id=member.id,
        now=now,
    )
    team = get_team(session, team_id=member.team_id)
    return Response(replies=[Reply(t(lang, "group.linked", team=escape(team.name)))])


def _unlink(session: Session, event: Incoming, member: Member, lang: str) -> Response:
    if member.role not in MANAGING_ROLES:
        return Response(replies=[Reply(t(lang, "group.unsetgroup_managers_only"))])
    if not unlink_group(session, team_id=member.team_id, chat_id=event.chat_id):
        return Response(replies=[Reply(t(lang, "group.not_linked_here"))])
    team = get_team(session, team_id=member.team_id)
    return Response(replies=[Reply(t(lang, "group.unlinked", team=escape(team.name)))])


def announce(turn: Turn) -> None:
    """Tell the team's group about this turn's stage changes, one short message each."""
    if not turn.response.events:
        return
    group = get_team_group(turn.session, team_id=turn.member.team_id)
    if group is None:
        return
    speaker = turn.in_language(turn.config.language)
    for event in turn.response.events:
        text = announcement(speaker, event)
        if text:
            turn.response.replies.append(Reply(text, chat_id=group.chat_id))


def announcement(turn: Turn, event: StageChanged) -> str | None:
    deal = turn.deals.load(event.deal_id)
    owner = get_member(turn.session, member_id=deal.owner_id)
    amount = turn.money(deal.amount_minor)
    params = {
        "rep": owner.display_name,
        "deal": render.deal_title(turn, deal),
        "from_stage": render.stage_name(turn, event.from_stage) if event.from_stage else "",
        "to_stage": render.stage_name(turn, event.to_stage),
        "amount": amount,
        "reason": deal.lost_reason or "",
    }
    return turn.text(f"group.{event.kind}", **params)


def group_migrated(session: Session, *, old_chat_id: int, new_chat_id: int) -> Response:
    """A group became a supergroup: keep posting there under its new id."""
    move_group(session, old_chat_id=old_chat_id, new_chat_id=new_chat_id)
    return Response()


def group_removed(session: Session, *, chat_id: int, now: datetime) -> Response:
    """The bot was removed from a group: stop posting and tell the team's managers once."""
    group = mark_group_removed(session, chat_id=chat_id, now=now)
    if group is None:
        return Response()
    replies = [
        Reply(t(m.language, "group.removed", title=escape(group.title)), chat_id=m.telegram_user_id)
        for m in list_members(session, team_id=group.team_id)
        if m.role in MANAGING_ROLES and m.active
    ]
    return Response(replies=replies)
