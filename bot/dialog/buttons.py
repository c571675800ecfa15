"""What a button carries back when it is pressed: one typed value per kind, written compactly.

Telegram gives a button 1-64 bytes of callback data, and a press may come from a message sent
long ago, or be forged. Each kind is a frozen dataclass with a one-letter tag; its text is the
tag and the fields, joined by ``:`` (``a:12:1:2``). Messages already in people's chats carry
these texts, so a tag and its fields' order never change; a new kind takes a new tag.

``decode`` is strict: a known tag, exactly the kind's fields, ids as short ASCII decimals, flags
as 0/1, text fields non-empty. Whether the values still make sense (the deal is visible, the
question still open) is for the feature that handles the press.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from typing import ClassVar

from bot.dialog.turn import is_number

MAX_BYTES = 64  # Telegram's limit for callback data


class ButtonData:
    """A button's value; subclasses are frozen dataclasses with a ``TAG``."""

    TAG: ClassVar[str]

    def encode(self) -> str:
        values = (_write(getattr(self, name)) for name, _ in _fields(type(self)))
        text = ":".join((self.TAG, *values))
        if len(text.encode("utf-8")) > MAX_BYTES:
            raise ValueError(f"button data over {MAX_BYTES} bytes: {text!r}")
        return text


@dataclass(frozen=True)
class AnswerQuestion(ButtonData):
    """An option, toggle, skip, back or stop under question ``seq`` of a run."""

    TAG = "q"
    seq: int
    payload: str


@dataclass(frozen=True)
class PickDeal(ButtonData):
    """A deal picked from a list, for what ``verb`` names (update, gaps, advance, ...)."""

    TAG = "d"
    verb: str
    deal_id: int


@dataclass(frozen=True)
class Move(ButtonData):
    """A deal's move from one stage to another, by the stages' indexes."""

    deal_id: int
    from_index: int
    to_index: int


@dataclass(frozen=True)
class ConfirmMove(Move):
    """Move the deal, once nothing blocks it."""

    TAG = "a"


@dataclass(frozen=True)
class EditField(ButtonData):
    """Change one answer (a field or checklist id), or show another stage's (``@<index>``)."""

    TAG = "e"
    deal_id: int
    key: str


@dataclass(frozen=True)
class PickLanguage(ButtonData):
    TAG = "l"
    lang: str


@dataclass(frozen=True)
class ForceMove(Move):
    """A manager forces a blocked move (a reason is asked next)."""

    TAG = "f"


@dataclass(frozen=True)
class AskException(Move):
    """A rep asks the managers to allow a blocked move (a reason is asked next)."""

    TAG = "x"


@dataclass(frozen=True)
class DecideRequest(ButtonData):
    """A manager approves or rejects a rep's exception request."""

    TAG = "r"
    request_id: int
    approve: bool


@dataclass(frozen=True)
class AnswerNudge(ButtonData):
    """Snooze a nudge a day or a week (``1``, ``7``) or mark it not relevant (``x``)."""

    TAG = "n"
    nudge_id: int
    action: str


@dataclass(frozen=True)
class ResumeDeal(ButtonData):
    """End a deal's pause now."""

    TAG = "p"
    deal_id: int


@dataclass(frozen=True)
class NoteCard(ButtonData):
    """Save all, fix, drop or keep the new value of item ``index`` (1-based) of a note's card."""

    TAG = "c"
    seq: int
    action: str
    index: int


@dataclass(frozen=True)
class NoteDeal(ButtonData):
    """The deal a note is about (``0``: a new deal)."""

    TAG = "m"
    seq: int
    deal_id: int


KINDS: dict[str, type[ButtonData]] = {
    kind.TAG: kind
    for kind in (
        AnswerQuestion,
        PickDeal,
        ConfirmMove,
        EditField,
        PickLanguage,
        ForceMove,
        AskException,
        DecideRequest,
        AnswerNudge,
        ResumeDeal,
        NoteCard,
        NoteDeal,
    )
}


def decode(data: str) -> ButtonData | None:
    """The value a button's data stands for; None for anything stale, malformed or unknown."""
    tag, _, rest = data.partition(":")
    kind = KINDS.get(tag)
    if kind is None:
        return None
    parts = rest.split(":")
    wanted = _fields(kind)
    if len(parts) != len(wanted):
        return None
    values = [_read(part, type_name) for part, (_, type_name) in zip(parts, wanted, strict=True)]
    if any(value is None for value in values):
        return None
    return kind(*values)


@cache
def _fields(kind: type[ButtonData]) -> tuple[tuple[str, str], ...]:
    """A kind's fields in order, as (name, type name): looked up once, every button uses them."""
    return tuple((spec.name, str(spec.type)) for spec in fields(kind))  # type: ignore[arg-type]


def _write(value: int | str | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _read(text: str, type_name: str) -> int | str | bool | None:
    if type_name == "bool":
        return {"1": True, "0": False}.get(text)
    if type_name == "int":
        return int(text) if is_number(text) else None
    return text or None
