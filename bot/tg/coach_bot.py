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

    async def get_updates_unparsed(
        self, *, offset: int, timeout: float, allowed_updates: list[str], read_timeout: float
    ) -> list[Any]:
        """``getUpdates`` answered as JSON: each update can then be read on its own, so one that
        cannot be read is skipped rather than failing the whole batch (``get_updates`` parses
        them all at once, and logs the raw batch, rep's words included, when one fails)."""
        params = {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates}
        answer = await post_unparsed(self, "getUpdates", params, read_timeout=read_timeout)
        return answer if isinstance(answer, list) else []
