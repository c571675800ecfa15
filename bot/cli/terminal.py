"""The terminal chat: the dialog layer rendered as plain text, buttons numbered.

Interactive on a terminal; with a script on standard input it echoes each line, so a piped
session reads like a transcript (demos and tests).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from bot.cli.app import App
from bot.dialog.events import Button, Incoming, Reply, Response, Sender
from flows.i18n import t
from storage.db import transaction
from storage.teams import add_member, create_team, get_member_by_telegram_id, get_team_by_name

# Local stand-ins for Telegram users (real Telegram ids are positive).
LOCAL_USERS = {"rep": -1001, "manager": -1002}
DEMO_TEAM = "Demo team"
QUIT = ("/quit", "/exit")
BUTTON_PICK = re.compile(r"^#?(\d{1,2})$")


def demo_sender(app: App, role: str) -> Sender:
    """The local member playing ``role`` in the demo team, created on first use."""
    user_id = LOCAL_USERS[role]
    defaults = app.settings.defaults
    with transaction(app.engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=user_id)
        if member is None:
            now = datetime.now(UTC)
            team = get_team_by_name(session, name=DEMO_TEAM) or create_team(
                session, name=DEMO_TEAM, now=now
            )
            add_member(
                session,
                team_id=team.id,
                telegram_user_id=user_id,
                display_name=t(defaults.language, f"terminal.name_{role}"),
                role=role,
                language=defaults.language,
                timezone=defaults.timezone,
                now=now,
            )
    return Sender(user_id=user_id, name=role, language_code=defaults.language)


def plain(text: str) -> str:
    """HTML message text as terminal text."""
    return html.unescape(re.sub(r"</?(b|i)>", "", text))


class TerminalChat:
    def __init__(self, app: App, sender: Sender, out: TextIO, echo: bool):
        self.app, self.sender, self.out, self.echo = app, sender, out, echo
        self.buttons: list[Button] = []
        self.buttons_need_hash = False

    def run(self, lines: Iterable[str]) -> None:
        self.send("/start")
        for raw in lines:
            line = raw.rstrip("\n")
            if self.echo:
                self.print(f"> {line}")
            if line.strip().lower() in QUIT:
                break
            self.send(line)

    def send(self, line: str) -> None:
        button = self._button_for(line.strip())
        event = Incoming(self.sender, text=None if button else line, button=button)
        self.show(self.app.dialog.handle(event))

    def _button_for(self, line: str) -> str | None:
        match = BUTTON_PICK.match(line)
        if not match or (self.buttons_need_hash and not line.startswith("#")):
            return None
        index = int(match.group(1)) - 1
        return self.buttons[index].data if 0 <= index < len(self.buttons) else None

    def show(self, response: Response) -> None:
        """Print a response; only the newest buttons can be pressed afterwards."""
        if response.notice:
            self.print(f"({plain(response.notice)})")
        mine = [r for r in response.replies if r.chat_id is None]
        if response.edited is not None or mine:
            self.buttons = []
        if response.edited is not None:
            self._show_reply(response.edited, prefix="✎ ")
        for reply in mine:
            self._show_reply(reply)
        for reply in response.replies:
            if reply.chat_id is not None:  # for a manager or the team's group, not for us
                self.print(f"[→ {reply.chat_id}] {plain(reply.text)}\n")

    def _show_reply(self, reply: Reply, prefix: str = "") -> None:
        if reply.photo:
            language = self.app.settings.defaults.language
            self.print(f"[{t(language, 'terminal.chart')} · {len(reply.photo) // 1024} KB]")
        self.print(prefix + plain(reply.text))
        flat = [b for row in reply.buttons for b in row]
        if flat:
            self.buttons, self.buttons_need_hash = flat, reply.expects_text
            mark = "#" if reply.expects_text else ""
            self.print("  ".join(f"[{mark}{n}] {b.label}" for n, b in enumerate(flat, 1)))
        self.print("")

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
