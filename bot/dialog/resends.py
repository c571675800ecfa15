"""A typed text sent again because its reply was late or lost, told apart from a new answer.

A rep answers, the bot saves the answer and then its reply is slow (Telegram is away, the bot
restarted, or a copy of the question arrived twice); the rep sends the same text again. Filed
under the next step, it would save one field's answer as another's, silently. The same text
is a re-send when the rep could not have seen what the bot said after the first one: that
message is not in the chat yet, or came after the rep's. In a private chat Telegram numbers
both sides' messages in one sequence, so "after" is exact, whatever the clocks say.
"""

from __future__ import annotations

from bot.dialog.events import Incoming
from bot.dialog.state import QUESTION, ConversationState
from bot.dialog.turn import Turn
from storage.outbox import newest_prompt, newest_questions


def typed_step(state: ConversationState) -> tuple:
    """Where a typed text lands: it moved the conversation on when this changes."""
    return state.mode, state.deal_id, state.key, state.part, state.seq, len(state.history)


def remember(state: ConversationState, before: tuple, text: str) -> None:
    """After a turn: the text a typed step took; a command that moved on forgets it."""
    if typed_step(state) == before:
        return
    state.typed = None if text.startswith("/") else _same(text)


def is_resent(turn: Turn, event: Incoming, text: str) -> bool:
    if turn.state.typed is None or text.startswith("/") or _same(text) != turn.state.typed:
        return False
    if event.message_id is None:
        return False  # nothing is known of what the rep was shown (the terminal chat)
    if event.shown is not None and event.message_id > event.shown[1]:
        # The newest message kept for the chat went out before the rep wrote: seen, without a
        # read (another instance may have kept a newer one meanwhile; this one would not know).
        return False
    chat_id = event.chat_id if event.chat_id is not None else event.sender.user_id
    if turn.state.mode == QUESTION:
        # Re-asked (a copy, /help, a re-send's reply), the open question is still the one
        # the text would answer: seen in any of its messages, the text is its answer.
        shown_at = _open_question_shown(turn, chat_id)
        return shown_at is None or event.message_id < shown_at
    newest = newest_prompt(turn.session, chat_id=chat_id)
    if newest is None:
        return False
    if event.shown is not None and event.shown[0] == newest.id:
        sent_as = event.shown[1]
    else:
        sent_as = newest.message_id  # sent by another process, or not (yet) at all
    return sent_as is None or event.message_id < sent_as


def _same(text: str) -> str:
    return " ".join(text.split())


def _open_question_shown(turn: Turn, chat_id: int) -> int | None:
    """Telegram's id of the first message sent that asks the open question (its ``seq``)."""
    mark = f"q:{turn.state.seq}:"
    first = None
    for row in newest_questions(turn.session, chat_id=chat_id):
        if not any(data.startswith(mark) for line in row.body["buttons"] for _, data in line):
            break  # an earlier question: the open one's messages are the newest
        if row.message_id is not None and (first is None or row.message_id < first):
            first = row.message_id
    return first
