"""The bot's own username, asked of Telegram once, for commands run outside the bot."""

from __future__ import annotations

import asyncio

from telegram import Bot
from telegram.error import TelegramError


class UsernameUnknown(Exception):
    """Telegram did not tell the bot's username; the message says why."""


def ask_bot_username(token: str, base_url: str) -> str | None:
    """``getMe``'s username for ``token``; raises UsernameUnknown with the reason.

    Any failure is UsernameUnknown, an answer PTB cannot read included: the caller has made
    something (an invite) that it must still show, with or without the name.
    """
    try:
        me = asyncio.run(Bot(token, base_url=base_url).get_me())
    except TelegramError as exc:
        raise UsernameUnknown(exc.message) from exc
    except Exception as exc:  # an answer that is not a bot user: say what, not its content
        raise UsernameUnknown(f"unexpected answer ({type(exc).__name__})") from exc
    return me.username or None
