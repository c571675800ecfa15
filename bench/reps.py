"""Simulated users: what each one sends next, and when the bot has answered them.

They read only what the bot sent them (as a person reads the chat), never the database:
an ``EchoUser`` waits for its echo; a ``Rep`` runs ``/update <deal>`` and answers each question
of the stage, typing where text is wanted and pressing the question's buttons where the
question offers choices (a checklist item alternately by typing "yes, …" and pressing Yes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.playbook import Playbook

CONTROLS = ("skip", "back", "stop")
SUMMARY_MARK = "% ready"  # the stage line of the summary card that ends a run
CHECKLIST_HINT = "Answer yes or no"
TYPED = {
    "text": "Head office training centre",
    "number": "120",
    "money": "500k",
    "percent": "30%",
    "date": "next Friday",
    "milestone": "next Friday, IT",
    "list": "Acme, Globex",
}
PERSON_TYPED = {"name": "Wang Wei", "title": "CIO"}


@dataclass(frozen=True)
class Action:
    """A typed message (``data`` None) or a press of ``data`` under message ``message_id``."""

    text: str | None = None
    data: str | None = None
    message_id: int | None = None


class User:
    """One chat's user. ``answered`` is told every message the bot sends or edits in the chat
    and says whether the answer to the last update is complete."""

    def __init__(self, user_id: int):
        self.user_id = user_id
        self.unexpected = 0  # answers that were not what the script expected

    def first(self) -> Action | None:
        raise NotImplementedError

    def answered(self, kind: str, message: dict[str, Any]) -> bool:
        raise NotImplementedError

    def next(self) -> Action | None:
        raise NotImplementedError


class Pinger(User):
    """Sends one message and is done when any message comes back (warm-up)."""

    def __init__(self, user_id: int, text: str = "/help"):
        super().__init__(user_id)
        self.text = text

    def first(self) -> Action:
        return Action(text=self.text)

    def answered(self, kind: str, message: dict[str, Any]) -> bool:
        return kind == "send"

    def next(self) -> Action | None:
        return None


class EchoUser(User):
    """Sends numbered lines; each is answered when its echo arrives."""

    def __init__(self, user_id: int, count: int):
        super().__init__(user_id)
        self.left = count
        self.line = ""

    def first(self) -> Action | None:
        return self.next()

    def answered(self, kind: str, message: dict[str, Any]) -> bool:
        if kind != "send":
            return False
        if message.get("text") != self.line:
            self.unexpected += 1
        return True

    def next(self) -> Action | None:
        if self.left <= 0:
            return None
        self.left -= 1
        self.line = f"line {self.left} from {self.user_id}"
        return Action(text=self.line)


class Rep(User):
    """Updates each of its deals in turn: ``/update <n>``, then every question of the stage."""

    def __init__(self, user_id: int, deals: list[int], playbook: Playbook):
        super().__init__(user_id)
        self.deals = list(deals)
        self.questions = _questions(playbook)
        self.question: dict[str, Any] | None = None  # the open question's message
        self.asked: dict[str, int] = {}  # question text -> times asked in this run
        self.runs = 0
        self.presses = 0
        self.typed = 0

    def first(self) -> Action | None:
        return self._start()

    def _start(self) -> Action | None:
        if not self.deals:
            return None
        self.question, self.asked = None, {}
        self.typed += 1
        return Action(text=f"/update {self.deals.pop(0)}")

    def answered(self, kind: str, message: dict[str, Any]) -> bool:
        if _question_buttons(message):
            self.question = message
            text = message.get("text", "")
            self.asked[text] = self.asked.get(text, 0) + 1
            if self.asked[text] > 1 and kind == "send":
                self.unexpected += 1  # asked again: our answer was refused
            return True
        if kind == "send" and SUMMARY_MARK in message.get("text", ""):
            self.question = None  # the run is over
            self.runs += 1
            return True
        return False

    def next(self) -> Action | None:
        if self.question is None:
            return self._start()
        message = self.question
        text = message.get("text", "")
        buttons = _question_buttons(message)
        payloads = {payload: data for _, payload, data in buttons}
        if self.asked.get(text, 0) > 2:
            return self._press(payloads["skip"])  # refused twice: leave it open
        if "restart" in payloads:  # "add another person?"
            return self._press(payloads["no"])
        if CHECKLIST_HINT in text:
            if len(self.asked) % 2:
                return self._type("yes, confirmed by phone")
            return self._press(payloads["yes"])
        toggles = [(label, data) for label, payload, data in buttons if payload.startswith("t.")]
        if toggles:
            chosen = any(label.startswith("✅") for label, _ in toggles)
            return self._press(payloads["done"] if chosen else toggles[0][1])
        choices = [data for _, payload, data in buttons if payload not in CONTROLS]
        if choices:
            return self._press(choices[0])
        typed = self._typed_answer(text)
        return self._type(typed) if typed else self._press(payloads["skip"])

    def _typed_answer(self, text: str) -> str | None:
        for part, answer in PERSON_TYPED.items():
            if f"{part}?" in text.lower() or f"their {part}" in text.lower():
                return answer
        found = [(len(q), kind) for q, kind in self.questions if q in text]
        if not found:
            return None
        return TYPED.get(max(found)[1])

    def _press(self, data: str) -> Action:
        self.presses += 1
        return Action(data=data, message_id=self.question["message_id"])

    def _type(self, text: str) -> Action:
        self.typed += 1
        return Action(text=text)


def _questions(playbook: Playbook) -> list[tuple[str, str]]:
    """(English question, field type) of every field."""
    return [(f.question["en"], f.type) for s in playbook.stages for f in s.fields]


def _question_buttons(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, payload, callback data) of the ``q:<seq>:<payload>`` buttons of a message."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    found = []
    for row in rows:
        for button in row:
            data = button.get("callback_data", "")
            kind, _, rest = data.partition(":")
            if kind == "q":
                found.append((button["text"], rest.partition(":")[2], data))
    return found
