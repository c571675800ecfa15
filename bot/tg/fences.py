"""The parts of python-telegram-bot that StageCoach uses without PTB promising them.

Everything here is covered by tests/test_upgrade_contracts.py, which fails with a message
naming what changed when an upgrade of PTB breaks one of these assumptions. Nothing else in the
code touches PTB's private parts (tests/test_layers.py checks the imports).
"""

from __future__ import annotations

from typing import Any

from telegram import User
from telegram.ext import ExtBot


async def post_unparsed(
    bot: ExtBot, method: str, params: dict[str, Any], *, read_timeout: float | None = None
) -> Any:
    """Call ``method`` through ``bot`` and return Telegram's answer as the JSON it came in.

    ``ExtBot._post`` is what ``send_message`` and the other wrappers call: it applies the
    bot's defaults, the rate limiter and the request (``getUpdates`` goes through its own),
    and raises PTB's errors; the wrappers then parse the answer into objects, which is the part
    this skips. ``read_timeout``: how long to wait for the answer (a long poll's included);
    the request's own timeout if None.
    """
    if read_timeout is None:
        return await bot._post(method, params)
    return await bot._post(method, params, read_timeout=read_timeout)


def assume_bot_user(bot: ExtBot, user: User) -> None:
    """Let ``bot`` start before ``getMe`` has answered.

    PTB keeps the bot's own user in ``Bot._bot_user``, set only by ``get_me``, and
    ``Application.start`` reads ``bot.id`` from it; a later ``get_me`` replaces this stand-in.
    """
    bot._bot_user = user
