"""The transport-neutral dialog: one incoming event in, the replies to send out.

Each event is handled in one database transaction that is committed before the replies are
returned, so an accepted answer is saved before the member sees the next question.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from bot import deals, questions
from bot.access import deal_for
from bot.events import Button, Incoming, Reply, Response
from bot.state import IDLE, LOST_REASON, NEW_CUSTOMER, NEW_NAME, QUESTION, ConversationState
from bot.turn import Turn
from flows.i18n import LANGUAGES, normalise_language, t
from flows.playbook import Playbook
from storage.conversations import get_conversation, save_conversation
from storage.db import transaction
from storage.models import Member
from storage.teams import get_member_by_telegram_id, update_member

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
CB_LANGUAGE = "l"  # l:<language>
MAX_TEXT = 4000  # longer messages are refused before any parsing


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dialog:
    def __init__(self, engine: Engine, playbook: Playbook, *, clock: Clock = utc_now):
        self.engine = engine
        self.playbook = playbook
        self.clock = clock

    def handle(self, event: Incoming) -> Response:
        """Handle one event; never raises: unexpected errors are logged and the member told."""
        try:
            with transaction(self.engine) as session:
                return self._handle(session, event)
        except Exception:
            log.exception(
                "failed to handle an event from user %s (button=%r, text=%r)",
                event.sender.user_id,
                event.button,
                (event.text or "")[:80],
            )
            lang = normalise_language(event.sender.language_code)
            return Response(replies=[Reply(t(lang, "dialog.error"))])

    def _handle(self, session: Session, event: Incoming) -> Response:
        member = get_member_by_telegram_id(session, telegram_user_id=event.sender.user_id)
        if member is None:
            lang = normalise_language(event.sender.language_code)
            return Response(replies=[Reply(t(lang, "dialog.not_a_member"))])
        conversation = get_conversation(session, member_id=member.id)
        state = ConversationState.from_dict(conversation.state if conversation else None)
        turn = Turn(session, member, state, self.playbook, self._local_now(member))
        if event.button is not None:
            on_button(turn, event.button)
        else:
            on_text(turn, event.text or "")
        save_conversation(
            session,
            member_id=member.id,
            deal_id=state.deal_id,
            question=state.key if state.mode == QUESTION else None,
            state=state.to_dict(),
            now=turn.now,
        )
        return turn.response

    def _local_now(self, member: Member) -> datetime:
        try:
            return self.clock().astimezone(ZoneInfo(member.timezone))
        except (KeyError, ValueError):
            return self.clock()


# -- typed messages --------------------------------------------------------------------------


def on_text(turn: Turn, text: str) -> None:
    if len(text) > MAX_TEXT:
        turn.say(turn.text("dialog.too_long", limit=MAX_TEXT))
        return questions.resume(turn)
    if text.startswith("/"):
        return on_command(turn, text)
    mode = turn.state.mode
    if mode in (NEW_CUSTOMER, NEW_NAME):
        return deals.new_deal_text(turn, text)
    if mode == LOST_REASON:
        return deals.lost_reason_text(turn, text)
    deal = questions.state_deal(turn)
    if mode == QUESTION and deal is not None:
        return questions.answer_text(turn, deal, text)
    turn.say(turn.text("dialog.idle_hint"))


def on_command(turn: Turn, text: str) -> None:
    word, _, args = text[1:].partition(" ")
    name = word.split("@")[0].lower()
    handler = COMMANDS.get(name)
    if handler is None:
        turn.say(turn.text("dialog.unknown_command", command=f"/{name}"))
        return questions.resume(turn)
    handler(turn, args.strip())


def help_command(turn: Turn, args: str) -> None:
    turn.say(turn.text("dialog.help"))
    questions.resume(turn)


def skip_command(turn: Turn, args: str) -> None:
    deal = questions.state_deal(turn)
    if turn.state.mode == QUESTION and deal is not None:
        return questions.skip(turn, deal)
    turn.say(turn.text("dialog.nothing_to_skip"))


def back_command(turn: Turn, args: str) -> None:
    deal = questions.state_deal(turn)
    if turn.state.mode == QUESTION and deal is not None:
        return questions.back(turn, deal)
    turn.say(turn.text("dialog.nothing_to_skip"))


def cancel_command(turn: Turn, args: str) -> None:
    was_idle = turn.state.mode == IDLE
    turn.state.reset()
    turn.say(turn.text("dialog.nothing_to_cancel" if was_idle else "dialog.cancelled"))


def lang_command(turn: Turn, args: str) -> None:
    choice = args.strip().lower()
    if choice not in LANGUAGES:
        buttons = [[Button("中文", f"{CB_LANGUAGE}:zh"), Button("English", f"{CB_LANGUAGE}:en")]]
        return turn.say(turn.text("dialog.pick_language"), buttons)
    set_language(turn, choice)


def set_language(turn: Turn, lang: str) -> None:
    update_member(turn.session, member_id=turn.member.id, language=lang)
    turn.member.language = lang
    turn.say(turn.text("dialog.language_set"))
    questions.resume(turn)


COMMANDS = {
    "start": help_command,
    "help": help_command,
    "new": deals.new_command,
    "deals": deals.deals_command,
    "update": deals.update_command,
    "edit": deals.edit_command,
    "gaps": deals.gaps_command,
    "advance": deals.advance_command,
    "lost": deals.lost_command,
    "skip": skip_command,
    "back": back_command,
    "cancel": cancel_command,
    "lang": lang_command,
}


# -- button presses --------------------------------------------------------------------------


def on_button(turn: Turn, data: str) -> None:
    """Route a button press; anything stale, malformed or foreign changes nothing."""
    kind, _, rest = data.partition(":")
    handler = BUTTONS.get(kind)
    if handler is None or not handler(turn, rest.split(":")):
        log.info("refused button %r from member %s", data[:64], turn.member.id)
        turn.response.notice = turn.text("dialog.old_button")


def _question_button(turn: Turn, parts: list[str]) -> bool:
    if len(parts) != 2 or not parts[0].isdigit():
        return False
    deal = questions.state_deal(turn)
    if turn.state.mode != QUESTION or int(parts[0]) != turn.state.seq or deal is None:
        return False
    questions.answer_button(turn, deal, parts[1])
    return True


def _deal_button(turn: Turn, parts: list[str]) -> bool:
    if len(parts) != 2 or parts[0] not in deals.VERBS or not parts[1].isdigit():
        return False
    deal = deal_for(turn.session, turn.member, int(parts[1]))
    if deal is None:
        return False
    deals.VERBS[parts[0]](turn, deal)
    return True


def _advance_button(turn: Turn, parts: list[str]) -> bool:
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return False
    deal = deal_for(turn.session, turn.member, int(parts[0]))
    stages = len(turn.playbook.stages)
    if deal is None or not (int(parts[1]) < stages and int(parts[2]) < stages):
        return False
    deals.confirm_advance(turn, deal, int(parts[1]), int(parts[2]))
    return True


def _edit_button(turn: Turn, parts: list[str]) -> bool:
    if len(parts) != 2 or not parts[0].isdigit():
        return False
    deal = deal_for(turn.session, turn.member, int(parts[0]))
    if deal is None:
        return False
    deals.edit_field(turn, deal, parts[1])
    return True


def _language_button(turn: Turn, parts: list[str]) -> bool:
    if len(parts) != 1 or parts[0] not in LANGUAGES:
        return False
    set_language(turn, parts[0])
    return True


BUTTONS = {
    questions.CB_QUESTION: _question_button,
    deals.CB_DEAL: _deal_button,
    deals.CB_ADVANCE: _advance_button,
    deals.CB_EDIT: _edit_button,
    CB_LANGUAGE: _language_button,
}
