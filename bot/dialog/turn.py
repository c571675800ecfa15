"""Everything one incoming event is handled with: the member, their state, the open session."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.dialog.events import Button, Reply, Response
from bot.dialog.state import ConversationState
from flows.i18n import pick, t
from flows.parsers import Invalid, Valid, format_money, format_value, has_words, parse_answer
from flows.playbook import FieldSpec, Playbook
from flows.schedule import NudgePolicy
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


class Html(str):
    """Text that is already safe HTML, so it is not escaped again."""


def escape(value: Any) -> Html:
    """User or playbook text made safe for HTML messages."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=False))


@dataclass(frozen=True)
class DialogConfig:
    """What the dialog needs from the settings and from Telegram."""

    language: str = "zh"  # for new members and for group messages
    timezone: str = "Asia/Shanghai"  # for new members
    bot_username: str | None = None  # for t.me links; unknown in the terminal chat
    nudges: NudgePolicy = field(default_factory=NudgePolicy)
    idle_days: int = 3  # digests list reps without an update for this long


@dataclass
class Turn:
    session: Session
    member: Member
    state: ConversationState
    playbook: Playbook
    now: datetime  # in the member's time zone
    config: DialogConfig = field(default_factory=DialogConfig)
    response: Response = field(default_factory=Response)
    # Set to write to someone else (a manager, the team's group) in their language.
    language: str | None = None

    @property
    def lang(self) -> str:
        return self.language or self.member.language

    def in_language(self, lang: str) -> Turn:
        """The same turn, writing in another language (replies still go to one response)."""
        return replace(self, language=lang)

    def text(self, key: str, **params: Any) -> Html:
        """A translated template with its parameters escaped."""
        return Html(t(self.lang, key, **{k: escape(v) for k, v in params.items()}))

    def short_text(self, text: str, limit: int) -> str | None:
        """A name or reason typed by the member, or None after saying what is wrong with it."""
        value = " ".join(text.split())
        if has_words(value) and len(value) <= limit:
            return value
        key = "dialog.text_too_long" if len(value) > limit else "dialog.text_no_words"
        self.say(self.text(key, limit=limit), expects_text=True)
        return None

    def label(self, key: str, **params: Any) -> str:
        """A button label: plain text, since Telegram does not parse HTML in buttons."""
        return t(self.lang, key, **params)

    def local(self, text: dict[str, str]) -> Html:
        """A playbook text in the member's language, escaped."""
        return escape(pick(text, self.lang))

    def parse(self, spec: FieldSpec, text: str) -> Valid | Invalid:
        """Read a typed answer in the member's time zone and the playbook's currency."""
        return parse_answer(spec, text, now=self.now, currency=self.playbook.currency)

    def money(self, minor: int | None) -> str:
        """An amount in the playbook's currency, or a dash when there is none."""
        return format_money(minor, self.lang, self.playbook.currency) if minor is not None else "—"

    def value(self, spec: FieldSpec, value: Any) -> str:
        """A saved answer as the member reads it (not yet escaped)."""
        return format_value(spec, value, self.lang, currency=self.playbook.currency)

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
    ) -> None:
        rows = tuple(tuple(row) for row in buttons or [] if row)
        self.response.replies.append(Reply(text, rows, expects_text, chat_id))
