"""The transport-neutral dialog: one incoming event in, the replies to send out.

Each event is handled in one database transaction that is committed before the replies are
returned, so an accepted answer is saved before the member sees the next question.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from bot.dialog import (
    buttons,
    deals,
    digests,
    general,
    groups,
    membership,
    notes,
    nudges,
    overrides,
    pause,
    questions,
    resends,
)
from bot.dialog.access import deal_for, may_go_on
from bot.dialog.events import Incoming, Reply, Response, Sender
from bot.dialog.outbox import keep_response
from bot.dialog.refusals import STALE
from bot.dialog.state import (
    EXCEPTION_REASON,
    LOST_REASON,
    NEW_CUSTOMER,
    NEW_NAME,
    NOTE_CARD,
    NOTE_DEAL,
    NOTE_TEXT,
    OVERRIDE_REASON,
    PAUSE_REASON,
    PAUSE_UNTIL,
    QUESTION,
    UPDATE,
    ConversationState,
    save_state,
)
from bot.dialog.turn import ButtonRoutes, CommandRoutes, DealVerbs, Turn, member_now
from bot.dialog.writer import DialogConfig
from flows.i18n import t
from flows.playbook import Playbook
from storage.db import database_failure, transaction, worth_retrying
from storage.outbox import drop_messages
from storage.teams import get_member_by_telegram_id
from storage.turns import start_turn

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
MAX_TEXT = 4000  # longer messages are refused before any parsing
K, V = TypeVar("K"), TypeVar("V")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _without_nul(event: Incoming) -> Incoming:
    """NUL characters mean nothing in a chat, and PostgreSQL refuses them in text columns."""

    def clean(value: str | None) -> str | None:
        return value.replace("\x00", "") if value else value

    sender = replace(event.sender, name=clean(event.sender.name) or "")
    return replace(
        event,
        sender=sender,
        text=clean(event.text),
        button=clean(event.button),
        chat_title=clean(event.chat_title) or "",
    )


# A turn PostgreSQL gave up on for a concurrent one (a deadlock victim) runs once more: turns
# of different chats run side by side (bot/tg/polling.py), and several instances may too.
TRIES = 2


class Dialog:
    def __init__(
        self,
        engine: Engine,
        playbook: Playbook,
        *,
        clock: Clock = utc_now,
        config: DialogConfig | None = None,
    ):
        self.engine = engine
        self.playbook = playbook
        self.clock = clock
        self.config = config or DialogConfig()

    def reads_long(self, event: Incoming) -> bool:
        """Whether the event asks for a long read: a whole team's digest (it can take seconds
        for a large team), which a caller may want to keep off its event loop."""
        text = event.text or ""
        return event.button is None and text.startswith("/") and _command(text)[0] in LONG_READS

    def handle(
        self, event: Incoming, *, engine: Engine | None = None, outbox: bool = False
    ) -> Response:
        """Handle one event; never raises: unexpected errors are logged and the member told.

        ``engine`` (here and below): another engine for the same database, such as the bot's,
        whose connections wait on its event loop (storage/event_loop.py); the dialog's own by
        default. ``outbox``: keep the replies in the outbox, in the turn's transaction
        (``Response.queued``), for a transport that sends them from there.
        """
        event = _without_nul(event)
        engine = engine or self.engine

        def turn(session: Session) -> Response:
            response = self._handle(session, event)
            if outbox:
                response.queued = keep_response(session, response, event, now=self.clock())
            return response

        return self._in_transaction(
            engine,
            turn,
            f"update {event.update_id} from user {event.sender.user_id} ({_shape(event)})",
            on_error=lambda: Response(
                replies=[Reply(t(self._language_of(engine, event), "dialog.error"))]
            ),
        )

    def group_migrated(
        self, old_chat_id: int, new_chat_id: int, *, engine: Engine | None = None
    ) -> Response:
        """A linked group became a supergroup with a new chat id."""
        return self._in_transaction(
            engine or self.engine,
            lambda s: groups.group_migrated(s, old_chat_id=old_chat_id, new_chat_id=new_chat_id),
            f"the migration of group {old_chat_id} to {new_chat_id}",
        )

    def group_removed(self, chat_id: int, *, engine: Engine | None = None) -> Response:
        """The bot was removed from a group (or can no longer post there)."""
        return self._in_transaction(
            engine or self.engine,
            lambda s: groups.group_removed(s, chat_id=chat_id, now=self.clock()),
            f"the removal from group {chat_id}",
        )

    def _in_transaction(
        self,
        engine: Engine,
        work: Callable[[Session], Response],
        what: str,
        on_error: Callable[[], Response] = Response,
    ) -> Response:
        tries_left = TRIES
        while True:
            tries_left -= 1
            try:
                with transaction(engine) as session:
                    return work(session)
            except Exception as exc:
                # Rolled back whole, the update's claim too: running it again is safe.
                if tries_left and worth_retrying(exc):
                    log.warning("%s got in another's way (%s); trying again", what, exc.orig)
                    continue
                cause = database_failure(exc)
                if cause is not None:  # one line each; the traceback would only repeat it
                    log.warning("%s: not saved, the database failed (%s)", what, cause)
                else:
                    log.exception("failed to handle %s", what)
                return on_error()

    def _language_of(self, engine: Engine, event: Incoming) -> str:
        """The member's language for an error message, even if the database is what failed."""
        try:
            with transaction(engine) as session:
                member = get_member_by_telegram_id(session, telegram_user_id=event.sender.user_id)
                if member is not None:
                    return member.language
        except Exception:
            log.warning("could not read the language of user %s", event.sender.user_id)
        return membership.member_language(event.sender.language_code, self.config)

    def _handle(self, session: Session, event: Incoming) -> Response:
        now = self.clock()
        start = start_turn(
            session, update_id=event.update_id, telegram_user_id=event.sender.user_id, now=now
        )
        if not start.claimed:
            log.info("update %s was handled already; ignoring the redelivery", event.update_id)
            return Response()
        member = start.member
        if not event.in_private:
            return groups.group_event(session, event, member, self.config, now)
        if member is None:
            return membership.stranger_event(session, event, self.config, now)
        state = ConversationState.from_dict(start.state)
        if not questions.still_asked(state, self.playbook):
            state.reset()  # the team's playbook dropped the question that was open
        turn = Turn(session, member, state, self.playbook, member_now(now, member), self.config)
        if state.ended or not may_go_on(turn):
            # Removed, demoted or moved with an action open: it ends here, once, politely. A
            # text typed for its next step is not taken for anything else.
            state.reset()
            turn.say(turn.text("dialog.action_ended"))
            if event.button is None and not (event.text or "").startswith("/"):
                save_state(session, member.id, state, turn.now)
                return turn.response
        if event.button is not None:
            on_button(turn, event.button)
        elif event.unsupported or event.edited:
            turn.say(turn.text("dialog.edited" if event.edited else "dialog.text_only"))
            questions.resume(turn)
        elif resends.is_resent(turn, event, event.text or ""):
            turn.say(turn.text("dialog.resent", text=turn.state.typed))
            # ``typed`` stays: sent once more after this reply, as it asks, the text answers
            # by the chat's order (bot/dialog/resends.py); a copy written before it does not.
            questions.resume(turn)
        else:
            before = resends.typed_step(state)
            on_text(turn, event.text or "")
            resends.remember(state, before, event.text or "")
        save_state(session, member.id, state, turn.now)
        groups.announce(turn)
        return turn.response

    def catch_up(self, chat_id: int, stale: list[int], *, engine: Engine | None = None) -> Response:
        """Replies that waited too long for Telegram (``stale``, outbox row ids of a private
        chat) are dropped, and the member is told where they stand instead: an old question
        arriving late, out of its context, would be answered wrongly. Kept in the outbox in
        the same transaction (``Response.queued``)."""

        def work(session: Session) -> Response:
            now = self.clock()
            drop_messages(session.connection(), stale, now=now)
            start = start_turn(session, update_id=None, telegram_user_id=chat_id, now=now)
            if start.member is None:
                return Response()
            state = ConversationState.from_dict(start.state)
            if not questions.still_asked(state, self.playbook):
                state.reset()
            member = start.member
            turn = Turn(session, member, state, self.playbook, member_now(now, member), self.config)
            turn.say(turn.text("dialog.caught_up", count=len(stale)))
            questions.resume(turn)
            if len(turn.response.replies) == 1:  # nothing open to resume
                turn.say(turn.text("dialog.idle_hint"))
            save_state(session, member.id, state, turn.now)
            response = turn.response
            home = Incoming(Sender(chat_id), chat_id=chat_id)
            response.queued = keep_response(session, response, home, now=now)
            return response

        return self._in_transaction(engine or self.engine, work, f"catching up chat {chat_id}")


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
    if mode in (OVERRIDE_REASON, EXCEPTION_REASON):
        return overrides.reason_text(turn, text)
    if mode in (PAUSE_REASON, PAUSE_UNTIL):
        return pause.pause_text(turn, text)
    if mode in (NOTE_TEXT, NOTE_DEAL):
        return notes.note_text(turn, text)
    if mode == NOTE_CARD:
        return notes.card_text(turn, text)
    deal = questions.state_deal(turn)
    if mode == QUESTION and deal is not None:
        if notes.is_note_at_question(turn, deal, text):
            # A visit told in one message at an open question: read it as a note.
            return notes.take_note(turn, text, deal, turn.state.run or UPDATE)
        return questions.answer_text(turn, deal, text)
    if not notes.idle_text(turn, text):
        turn.say(turn.text("dialog.idle_hint"))


def on_command(turn: Turn, text: str) -> None:
    name, args = _command(text)
    handler = COMMANDS.get(name)
    if handler is None:
        turn.say(turn.text("dialog.unknown_command", command=f"/{name}"))
        return questions.resume(turn)
    handler(turn, args.strip())


def _shape(event: Incoming) -> str:
    """What an event was, for a log line, without what the person wrote: log lines are kept
    and read by operators, and a rep's words about a customer are not theirs to read."""
    if event.button is not None:
        pressed = buttons.decode(event.button)
        return f"a press of {type(pressed).__name__}" if pressed else "an unknown press"
    text = event.text or ""
    if text.startswith("/"):
        name = _command(text)[0]
        return f"/{name}" if name in COMMANDS else "an unknown command"
    return f"{len(text)} characters of text"


def _command(text: str) -> tuple[str, str]:
    """``/Digest@StageCoachBot  week`` -> ("digest", " week")."""
    word, _, args = text[1:].partition(" ")
    return word.split("@")[0].lower(), args


# -- button presses --------------------------------------------------------------------------


def on_button(turn: Turn, data: str) -> None:
    """Route a button press; anything stale, malformed or foreign changes nothing."""
    pressed = buttons.decode(data)
    handler = BUTTONS.get(type(pressed)) if pressed is not None else None
    if handler is None or not handler(turn, pressed):
        kind = type(pressed).__name__ if pressed is not None else "unknown"
        STALE.note(turn.member.id, f"refused a press ({kind})")
        turn.response.notice = turn.text("dialog.old_button")
        questions.resume(turn)


def _deal_button(turn: Turn, pressed: buttons.PickDeal) -> bool:
    """A deal picked from a list, for what the features' DEAL_VERBS say its verb means."""
    action = DEAL_VERBS.get(pressed.verb)
    deal = deal_for(turn.deals, turn.member, pressed.deal_id) if action else None
    if deal is None:
        return False
    action(turn, deal)
    return True


# -- the routes, put together ---------------------------------------------------------------


def compose(tables: Iterable[dict[K, V]]) -> dict[K, V]:
    """One table from the features' own; a name claimed twice is a mistake caught at import."""
    composed: dict[K, V] = {}
    for table in tables:
        twice = composed.keys() & table.keys()
        if twice:
            raise ValueError(f"routes declared twice: {sorted(map(str, twice))}")
        composed.update(table)
    return composed


FEATURES = (general, deals, questions, notes, overrides, pause, nudges, digests, membership)
COMMANDS: CommandRoutes = compose(getattr(f, "COMMANDS", {}) for f in FEATURES)
DEAL_VERBS: DealVerbs = compose(getattr(f, "DEAL_VERBS", {}) for f in FEATURES)
BUTTONS: ButtonRoutes = compose(
    [*(getattr(f, "BUTTONS", {}) for f in FEATURES), {buttons.PickDeal: _deal_button}]
)
LONG_READS = frozenset({"digest"})  # commands that read a whole team
