"""What goes in and out of the dialog layer, free of any transport.

The terminal chat and the Telegram adapter turn their input into an ``Incoming`` and render the
``Response``; neither decides anything about deals or questions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sender:
    """Who sent an event: a Telegram user id (or a local stand-in in the terminal chat)."""

    user_id: int
    name: str = ""
    language_code: str | None = None


@dataclass(frozen=True)
class Incoming:
    """A typed message (commands included) or a button press (its callback data)."""

    sender: Sender
    text: str | None = None
    button: str | None = None
    # A message the bot cannot read (sticker, photo, voice...) or an edit of an earlier one.
    unsupported: bool = False
    edited: bool = False
    chat_type: str = "private"  # or "group", "supergroup"
    chat_id: int | None = None  # None: the sender's private chat
    chat_title: str = ""
    # Telegram's update id: a redelivered update (same id) takes effect once.
    update_id: int | None = None
    # Telegram's id of the message: the one typed, or the one whose button was pressed (its
    # rewrite replaces it). In a private chat both sides' messages share one sequence of ids.
    message_id: int | None = None
    # The newest message kept for the chat, when this process has sent it: its outbox row id
    # and Telegram's id. None: one is on its way, or this process does not know.
    shown: tuple[int, int] | None = None

    @property
    def in_private(self) -> bool:
        return self.chat_type == "private"


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """One message. ``text`` is HTML (<b>, <i>) with every piece of user text escaped."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    # A typed answer is wanted; the buttons are extras such as skip and back.
    expects_text: bool = False
    # Another chat to send this to (a manager, the team's group); None: the chat of the event.
    chat_id: int | None = None
    # A PNG sent before the text (the digest's funnel chart).
    photo: bytes | None = None
    # Added to the text when Telegram refuses the photo itself: the text goes out without it.
    photo_refused: str | None = None
    # The open question with its controls: a typed answer rewrites this message.
    asks: bool = False


@dataclass(frozen=True)
class StageChanged:
    """A deal moved between stages, was won or lost (the team's group hears of it)."""

    deal_id: int
    from_stage: str | None
    to_stage: str
    kind: str
    member_id: int


@dataclass(frozen=True)
class Queued:
    """A message kept in the outbox: a new one, or an edit of ``message_id`` (None: of the
    newest question sent to the chat before it)."""

    id: int
    chat_id: int
    reply: Reply
    edit: bool = False
    message_id: int | None = None


@dataclass
class Response:
    replies: list[Reply] = field(default_factory=list)
    events: list[StageChanged] = field(default_factory=list)
    # Short notice for a button press that changed nothing (an old or foreign button).
    notice: str | None = None
    # The message whose button was pressed, rewritten: a question with its answer (no buttons
    # left live), or a multiple choice with its new check marks. After a typed answer: the
    # question it answered.
    edited: Reply | None = None
    # The messages above as kept in the outbox (bot/dialog/outbox.py), when the caller asked.
    queued: list[Queued] = field(default_factory=list)


class Outcome(enum.Enum):
    """What became of a message sent to Telegram."""

    SENT = "sent"
    PARTIAL = "partial"  # the first part went out, a later one failed
    BLOCKED = "blocked"  # the user blocked the bot or it left the group: do not retry
    FAILED = "failed"  # nothing went out; worth trying again later
    REFUSED = "refused"  # Telegram refused it (a 400): sending it again would fail again
    # Sent, but Telegram's answer never came: it may have arrived, and a send cannot be undone.
    UNANSWERED = "unanswered"

    @property
    def reached(self) -> bool:
        """Whether the member saw (part of) it, or may have: do not send it again."""
        return self in (Outcome.SENT, Outcome.PARTIAL, Outcome.UNANSWERED)
