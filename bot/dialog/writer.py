"""How the bot writes to one reader: their language, the playbook's texts and currency, their
clock. A chat turn writes as its member (bot/dialog/turn.py); the nudge and digest runners write
to a rep or a manager with a ``Writer`` and no conversation at all."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flows.i18n import pick, t
from flows.parsers import format_money, format_value, parse_answer
from flows.playbook import FieldSpec, Playbook
from flows.reading import Invalid, Valid
from flows.schedule import NudgePolicy


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


class Writing:
    """Texts for one reader, from ``lang``, ``playbook``, ``now`` and ``config``, which the
    class mixing this in provides."""

    lang: str
    playbook: Playbook
    now: datetime  # in the reader's time zone
    config: DialogConfig

    def text(self, key: str, **params: Any) -> Html:
        """A translated template with its parameters escaped."""
        return Html(t(self.lang, key, **{k: escape(v) for k, v in params.items()}))

    def label(self, key: str, **params: Any) -> str:
        """A button label: plain text, since Telegram does not parse HTML in buttons."""
        return t(self.lang, key, **params)

    def local(self, text: dict[str, str]) -> Html:
        """A playbook text in the reader's language, escaped."""
        return escape(pick(text, self.lang))

    def parse(self, spec: FieldSpec, text: str) -> Valid | Invalid:
        """Read a typed answer in the reader's time zone and the playbook's currency."""
        return parse_answer(spec, text, now=self.now, currency=self.playbook.currency)

    def money(self, minor: int | None) -> str:
        """An amount in the playbook's currency, or a dash when there is none."""
        return format_money(minor, self.lang, self.playbook.currency) if minor is not None else "—"

    def value(self, spec: FieldSpec, value: Any) -> str:
        """A saved answer as the reader reads it (not yet escaped)."""
        return format_value(spec, value, self.lang, currency=self.playbook.currency)


@dataclass(frozen=True)
class Writer(Writing):
    lang: str
    playbook: Playbook
    now: datetime
    config: DialogConfig = field(default_factory=DialogConfig)

    def in_language(self, lang: str) -> Writer:
        return replace(self, lang=lang)
