"""PTB's bot with one addition: a call whose answer is not turned into objects."""

from __future__ import annotations

from typing import Any

from telegram.ext import ExtBot

from bot.tg.fences import post_unparsed


class CoachBot(ExtBot):
    async def post_unparsed(self, method: str, **params: Any) -> Any:
        """Call ``method`` and return Telegram's answer as the JSON it came in.

        A send is answered with the message it made. Nothing in StageCoach reads that message,
        and PTB's parsing of it (``Message.de_json``) would be a large share of the bot's CPU
        per update (bench/README.md). The request, the rate limiter and the errors raised are
        those of ``send_message`` and the other wrappers.
        """
        return await post_unparsed(self, method, params)
