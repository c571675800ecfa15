"""The bot's own username, asked of Telegram once, for commands run outside the bot."""

from __future__ import annotations

import asyncio

from telegram import Bot
from telegram.error import TelegramError


class UsernameUnknown(Exception):
    """Telegram did not tell the bot's username; the message says why."""


def ask_bot_username(token: str, base_url: str) -> str | None:
    """``getMe``'s username for ``token``; raises UsernameUnknown with Telegram's reason."""
    try:
        me = asyncio.run(Bot(token, base_url=base_url).get_me())
    except TelegramError as exc:
        raise UsernameUnknown(exc.message) from exc
    return me.username
