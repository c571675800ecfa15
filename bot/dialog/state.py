"""A member's place in a conversation, stored as JSON in the database after every step.

The database is the one source of truth, so a bot killed mid-question resumes at that question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.conversations import save_conversation

IDLE = "idle"
NEW_CUSTOMER = "new_customer"  # waiting for the customer's name
NEW_NAME = "new_name"  # waiting for the deal's name
QUESTION = "question"  # a playbook question is open
LOST_REASON = "lost_reason"  # waiting for why a deal was lost
OVERRIDE_REASON = "override_reason"  # a manager forcing a blocked move: why
EXCEPTION_REASON = "exception_reason"  # a rep asking managers for an exception: why
PAUSE_REASON = "pause_reason"  # pausing a deal: why
PAUSE_UNTIL = "pause_until"  # pausing a deal: until when
NOTE_TEXT = "note_text"  # /note without words: waiting for the note
NOTE_DEAL = "note_deal"  # a note waiting for the deal it is about
NOTE_CARD = "note_card"  # the values read from a note, waiting to be confirmed

# Kinds of question run.
QUALIFY = "qualify"  # the target-group criteria of a new deal
UPDATE = "update"  # the current stage's gaps, then optional fields
EDIT = "edit"  # one named field, then back to idle

MORE_PEOPLE = "more"  # stakeholder part: "add another person?"


@dataclass
class ConversationState:
    mode: str = IDLE
    deal_id: int | None = None
    run: str | None = None
    key: str | None = None
    # Stakeholder part being asked (name, title, ...), or MORE_PEOPLE.
    part: str | None = None
    # Work in progress: a new deal's customer, a stakeholder being built, a multiple choice.
    draft: dict[str, Any] = field(default_factory=dict)
    # Keys put to the rep in this run and left open (skipped or answered "no").
    passed: list[str] = field(default_factory=list)
    # Keys asked in this run, oldest first, for /back.
    history: list[str] = field(default_factory=list)
    # Grows with every question asked; buttons carry it so presses on old messages are refused.
    seq: int = 0
    # The text the last typed step took: the same text sent again before the rep could see what
    # came next is a re-send (a reply late or lost), not an answer to the next step.
    typed: str | None = None
    # The member was removed (or their role changed) with an action open: it was ended, and
    # they are told so once, the next time they write (bot/dialog/membership.py).
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConversationState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def reset(self) -> None:
        """Back to idle, keeping the question counter so old buttons stay refused."""
        seq = self.seq
        self.__dict__.update(ConversationState().__dict__)
        self.seq = seq


def save_state(session: Session, member_id: int, state: ConversationState, now: datetime) -> None:
    """Store the member's place in the conversation (the end of every step)."""
    save_conversation(
        session,
        member_id=member_id,
        deal_id=state.deal_id,
        question=state.key if state.mode == QUESTION else None,
        state=state.to_dict(),
        now=now,
    )
