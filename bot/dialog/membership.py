"""Joining a team with an invite code, and managers making invites."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.dialog.access import MANAGING_ROLES
from bot.dialog.events import Incoming, Reply, Response
from bot.dialog.state import IDLE, ConversationState, save_state
from bot.dialog.turn import CommandRoutes, Turn
from bot.dialog.writer import DialogConfig, escape
from flows.i18n import LANGUAGES, t
from storage.conversations import get_conversation
from storage.invites import create_invite, redeem_invite, set_invite_user
from storage.models import INVITE_ROLES, Member
from storage.teams import (
    add_member,
    get_team,
    get_team_member,
    list_memberships,
    update_member,
)


def stranger_event(
    session: Session, event: Incoming, config: DialogConfig, now: datetime
) -> Response:
    """Someone who has not joined: ``/start <code>`` joins; anything else gets one hint."""
    lang = member_language(event.sender.language_code, config)
    if not event.in_private:
        return Response()  # strangers in groups are not answered
    ended = [Reply(t(lang, "dialog.action_ended"))] if take_ended(session, event, now) else []
    command, _, code = (event.text or "").strip().partition(" ")
    if command.split("@")[0] != "/start" or not code.strip():
        return Response(replies=[*ended, Reply(t(lang, "dialog.not_a_member"))])
    invite = redeem_invite(session, code=code.strip(), now=now)
    if invite is None:
        return Response(replies=[Reply(t(lang, "team.invite_invalid"))])
    member = _join(session, invite, event, lang, config, now)
    set_invite_user(session, invite_id=invite.id, member_id=member.id)
    team = get_team(session, team_id=invite.team_id)
    welcome = t(
        lang, "team.joined", team=escape(team.name), role=t(lang, f"team.role_{invite.role}")
    )
    return Response(replies=[*ended, Reply(welcome), Reply(t(lang, "dialog.help"))])


def _join(session: Session, invite, event: Incoming, lang: str, config: DialogConfig, now):
    """A new member, or a removed one back in the team with the invite's role."""
    earlier = get_team_member(
        session, team_id=invite.team_id, telegram_user_id=event.sender.user_id
    )
    if earlier is not None:
        return update_member(session, member_id=earlier.id, active=True, role=invite.role)
    return add_member(
        session,
        team_id=invite.team_id,
        telegram_user_id=event.sender.user_id,
        display_name=(event.sender.name or str(event.sender.user_id))[:64],
        role=invite.role,
        language=lang,
        timezone=config.timezone,
        now=now,
    )


def remove_member(session: Session, *, member_id: int, now: datetime) -> Member:
    """Take a member out of their team (``stagecoach team remove``). The action they had open
    ends with it; they hear of it once, the next time they write (``take_ended``)."""
    member = update_member(session, member_id=member_id, active=False)
    conversation = get_conversation(session, member_id=member_id)
    state = ConversationState.from_dict(conversation.state if conversation else None)
    if state.mode != IDLE:
        state.reset()
        state.ended = True
        save_state(session, member_id, state, now)
    return member


def take_ended(session: Session, event: Incoming, now: datetime) -> bool:
    """Whether an action of this person's was ended while they were away (removed, in any
    team); once told, it is forgotten."""
    told = False
    for member in list_memberships(session, telegram_user_id=event.sender.user_id):
        conversation = get_conversation(session, member_id=member.id)
        state = ConversationState.from_dict(conversation.state if conversation else None)
        if state.ended:
            state.ended = False
            save_state(session, member.id, state, now)
            told = True
    return told


def member_language(code: str | None, config: DialogConfig) -> str:
    """Telegram's language code when we speak it, else the team default."""
    base = (code or "").split("-")[0].lower()
    return base if base in LANGUAGES else config.language


def invite_command(turn: Turn, args: str) -> None:
    """A manager makes a one-time invite: ``/invite`` (a rep) or ``/invite manager``."""
    if turn.member.role not in MANAGING_ROLES:
        return turn.say(turn.text("team.managers_only"))
    role = args.strip().lower() or "rep"
    if role not in INVITE_ROLES:
        return turn.say(turn.text("team.invite_usage"))
    code = create_invite(
        turn.session,
        team_id=turn.member.team_id,
        role=role,
        now=turn.now,
        created_by=turn.member.id,
    )
    turn.say(
        turn.text(
            "team.invite_made",
            role=turn.text(f"team.role_{role}"),
            code=code,
            link=invite_link(turn.config, code),
        )
    )


def invite_link(config: DialogConfig, code: str) -> str:
    if config.bot_username:
        return f"https://t.me/{config.bot_username}?start={code}"
    return f"/start {code}"


COMMANDS: CommandRoutes = {"invite": invite_command}
