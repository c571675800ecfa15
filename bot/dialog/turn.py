"""Everything one incoming event is handled with: the member, their state, the open session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.dialog.deal_view import TurnDeals
from bot.dialog.events import Button, Reply, Response
from bot.dialog.state import ConversationState
from bot.dialog.writer import DialogConfig, Writing
from flows.playbook import Playbook
from flows.reading import has_words
from storage.models import Member


def is_number(text: str) -> bool:
    """A plausible id or index typed or forged by a user.

    ASCII digits only (``"²".isdigit()`` is true, yet ``int("²")`` fails), and short enough for
    any database integer.
    """
    return text.isascii() and text.isdigit() and len(text) <= 15


def member_now(now: datetime, member: Member) -> datetime:
    """``now`` in the member's time zone (UTC if theirs is unknown)."""
    try:
        return now.astimezone(ZoneInfo(member.timezone))
    except (KeyError, ValueError):
        return now


@dataclass
class Turn(Writing):
    """A chat turn: the member, their conversation state, the open session, the replies so far;
    it writes as the member reads (``Writing``)."""

    session: Session
    member: Member
    state: ConversationState
    playbook: Playbook
    now: datetime  # in the member's time zone
    config: DialogConfig = field(default_factory=DialogConfig)
    response: Response = field(default_factory=Response)
    # Set to write to someone else (a manager, the team's group) in their language.
    language: str | None = None
    deals: TurnDeals = field(init=False)  # each deal loaded once, with its answers and gaps

    def __post_init__(self) -> None:
        self.deals = TurnDeals(self.session)

    @property
    def lang(self) -> str:
        return self.language or self.member.language

    def in_language(self, lang: str) -> Turn:
        """The same turn, writing in another language (replies still go to one response)."""
        other = replace(self, language=lang)
        other.deals = self.deals
        return other

    def short_text(self, text: str, limit: int) -> str | None:
        """A name or reason typed by the member, or None after saying what is wrong with it."""
        value = " ".join(text.split())
        if has_words(value) and len(value) <= limit:
            return value
        key = "dialog.text_too_long" if len(value) > limit else "dialog.text_no_words"
        self.say(self.text(key, limit=limit), expects_text=True)
        return None

    def edit(self, text: str, buttons: list[list[Button]] | None = None) -> None:
        """Rewrite the message whose button was pressed (dropping its buttons unless given)."""
        rows = tuple(tuple(row) for row in buttons or [] if row)
        self.response.edited = Reply(text, rows)

    def say(
        self,
        text: str,
        buttons: list[list[Button]] | None = None,
        *,
        expects_text: bool = False,
        chat_id: int | None = None,
        asks: bool = False,
    ) -> None:
        rows = tuple(tuple(row) for row in buttons or [] if row)
        self.response.replies.append(Reply(text, rows, expects_text, chat_id, asks=asks))


# How a feature module declares what it handles (bot/dialog/router.py puts them together):
# commands by name, button presses by their data's kind (bot/dialog/buttons.py; a handler says
# whether the press was still valid), and what a deal picked from a list is for.
CommandRoutes = dict[str, Callable[[Turn, str], None]]
ButtonRoutes = dict[type, Callable[[Turn, Any], bool]]
DealVerbs = dict[str, Callable[[Turn, Any], None]]
