"""Drive the dialog layer as a member would: type text, press buttons by their label."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from sqlalchemy import Engine

from bot.dialog.events import Button, Incoming, Reply, Response, Sender
from bot.dialog.router import Dialog
from flows.playbook import Playbook, load_playbook
from storage.conversations import get_conversation
from storage.db import transaction
from storage.teams import get_member_by_telegram_id

PLAYBOOK: Playbook = load_playbook()
# Thursday 2026-11-26, 10:00 in Shanghai.
FIXED_NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def plain(text: str) -> str:
    return html.unescape(re.sub(r"</?(b|i)>", "", text))


class Driver:
    def __init__(
        self,
        engine: Engine,
        user_id: int,
        language_code: str = "en",
        playbook: Playbook = PLAYBOOK,
    ):
        self.engine = engine
        self.dialog = Dialog(engine, playbook, clock=lambda: FIXED_NOW)
        self.sender = Sender(user_id=user_id, name="tester", language_code=language_code)
        self.last = Response()

    def say(self, text: str) -> Response:
        return self._send(Incoming(self.sender, text=text))

    def press(self, label: str) -> Response:
        """Press the newest button whose label contains ``label``."""
        return self.press_data(self.button(label).data)

    def press_data(self, data: str) -> Response:
        return self._send(Incoming(self.sender, button=data))

    def button(self, label: str) -> Button:
        for reply in self._messages():
            for row in reply.buttons:
                for button in row:
                    if label in button.label:
                        return button
        raise AssertionError(f"no button {label!r} in {self.labels}")

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.buttons()]

    def buttons(self) -> list[Button]:
        """The buttons of the last response, newest message first."""
        return [b for r in self._messages() for row in r.buttons for b in row]

    def _messages(self) -> list[Reply]:
        """This member's messages of the last response, newest first (an edit counts)."""
        mine = [r for r in reversed(self.last.replies) if r.chat_id is None]
        return mine + ([self.last.edited] if self.last.edited else [])

    @property
    def text(self) -> str:
        """Everything the last response said, as plain text."""
        parts = [self.last.notice or "", *(r.text for r in self.last.replies)]
        return plain("\n".join(p for p in parts if p))

    @property
    def raw(self) -> str:
        return "\n".join(r.text for r in self.last.replies)

    def open_question(self) -> str | None:
        """The field or checklist id the member is being asked, read from the database."""
        with transaction(self.engine) as session:
            member = get_member_by_telegram_id(session, telegram_user_id=self.sender.user_id)
            conversation = get_conversation(session, member_id=member.id)
            return conversation.question if conversation else None

    def _send(self, event: Incoming) -> Response:
        self.last = self.dialog.handle(event)
        return self.last
