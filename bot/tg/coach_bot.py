"""PTB's bot with one addition: a call whose answer is not turned into objects."""

from __future__ import annotations

import logging
from typing import Any

from telegram import User
from telegram.error import InvalidToken, TelegramError
from telegram.ext import ExtBot

from bot.tg.fences import assume_bot_user, post_unparsed

log = logging.getLogger(__name__)


class CoachBot(ExtBot):
    _introduced = False  # initialize ran: not again, so a getMe that times out costs one wait

    async def initialize(self) -> None:
        """PTB's, except that ``getMe`` failing does not stop the start.

        Telegram (or a proxy before it) answering 5xx or timing out must not keep the bot from
        serving: until ``getMe`` answers (bot/tg/application.py asks again in the background)
        the bot goes by the id in its token. A token Telegram rejects still stops it, in words
        that do not repeat the token (PTB's own message quotes it).
        """
        if self._introduced:  # PTB initializes the bot twice (the application, the updater)
            return
        self._introduced = True
        try:
            await super().initialize()
        except InvalidToken:
            raise InvalidToken("Telegram rejected the bot token (TELEGRAM_BOT_TOKEN)") from None
        except Exception as exc:  # also an answer PTB cannot read: an emulator's, say
            reason = exc if isinstance(exc, TelegramError) else type(exc).__name__
            log.warning("Telegram did not say who this bot is (%s); starting anyway", reason)
            bot_id = self.token.partition(":")[0]
            assume_bot_user(self, User(int(bot_id) if bot_id.isdigit() else 0, "", is_bot=True))

    async def post_unparsed(self, method: str, **params: Any) -> Any:
        """Call ``method`` and return Telegram's answer as the JSON it came in.

        A send is answered with the message it made. Nothing in StageCoach reads that message,
        and PTB's parsing of it (``Message.de_json``) would be a large share of the bot's CPU
        per update (bench/README.md). The request, the rate limiter and the errors raised are
        those of ``send_message`` and the other wrappers.
        """
        return await post_unparsed(self, method, params)

    async def get_updates_unparsed(
        self, *, offset: int, timeout: float, allowed_updates: list[str], read_timeout: float
    ) -> list[Any]:
        """``getUpdates`` answered as JSON: each update can then be read on its own, so one that
        cannot be read is skipped rather than failing the whole batch (``get_updates`` parses
        them all at once, and logs the raw batch, rep's words included, when one fails)."""
        params = {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates}
        answer = await post_unparsed(self, "getUpdates", params, read_timeout=read_timeout)
        return answer if isinstance(answer, list) else []
