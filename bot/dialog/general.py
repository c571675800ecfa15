"""Commands every member has: help, language, time zone, and skip, back and cancel for the
question that is open."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.dialog import nudges, questions
from bot.dialog.buttons import PickLanguage
from bot.dialog.events import Button
from bot.dialog.state import IDLE, QUESTION
from bot.dialog.turn import ButtonRoutes, CommandRoutes, Turn
from flows.i18n import LANGUAGES
from storage.teams import update_member


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
    deal = questions.state_deal(turn)
    if turn.state.mode == QUESTION and deal is not None:
        # Leaving a run with gaps open still earns a follow-up.
        nudges.plan_gap_follow_up(turn, deal)
    turn.state.reset()
    turn.say(turn.text("dialog.nothing_to_cancel" if was_idle else "dialog.cancelled"))


def tz_command(turn: Turn, args: str) -> None:
    """``/tz Europe/Berlin``: the member's time zone, for dates and reminders."""
    zone = args.strip()
    if not zone:
        return turn.say(turn.text("dialog.tz_current", zone=turn.member.timezone))
    try:
        if len(zone) > 64:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return turn.say(turn.text("dialog.tz_unknown", zone=zone[:64]))
    update_member(turn.session, member_id=turn.member.id, timezone=zone)
    turn.say(turn.text("dialog.tz_set", zone=zone))
    questions.resume(turn)


def lang_command(turn: Turn, args: str) -> None:
    choice = args.strip().lower()
    if choice not in LANGUAGES:
        choices = [
            [
                Button("中文", PickLanguage("zh").encode()),
                Button("English", PickLanguage("en").encode()),
            ]
        ]
        return turn.say(turn.text("dialog.pick_language"), choices)
    set_language(turn, choice)


def set_language(turn: Turn, lang: str) -> None:
    update_member(turn.session, member_id=turn.member.id, language=lang)
    turn.member.language = lang
    turn.say(turn.text("dialog.language_set"))
    questions.resume(turn)


def _language_button(turn: Turn, pressed: PickLanguage) -> bool:
    if pressed.lang not in LANGUAGES:
        return False
    set_language(turn, pressed.lang)
    return True


COMMANDS: CommandRoutes = {
    "start": help_command,
    "help": help_command,
    "skip": skip_command,
    "back": back_command,
    "cancel": cancel_command,
    "lang": lang_command,
    "tz": tz_command,
}
BUTTONS: ButtonRoutes = {PickLanguage: _language_button}
