"""Sending dialog responses to Telegram: HTML messages, inline keyboards, edits, callbacks.

Everything for the chat an update came from goes out in order under that chat's lock; replies
for other chats (a manager, the team's group) follow, each under its own lock, never nested,
so two responses crossing between two chats cannot deadlock. Flood limits and 429s are the
rate limiter's job (bot/tg/ratelimit.py); here we handle what a send can tell us: a group that
migrated or removed the bot, a user who blocked it, a flaky network. Nothing here raises.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Awaitable, Callable

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
)
from telegram.constants import CallbackQueryLimit, MessageLimit, ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot.dialog.events import Outcome, Reply, Response
from bot.tg.coach_bot import CoachBot
from bot.tg.transport import NoAnswer, NotSent

log = logging.getLogger(__name__)
NETWORK_ATTEMPTS = 3
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
TAG = re.compile(r"</?[a-z]+[^>]*>")

# What the dialog says when Telegram tells us about a group (see Dialog.group_*).
GroupMigratedHook = Callable[[int, int], Awaitable[Response]]
GroupRemovedHook = Callable[[int], Awaitable[Response]]


class Delivery:
    def __init__(self, bot: CoachBot, on_migrated: GroupMigratedHook, on_removed: GroupRemovedHook):
        self.bot = bot
        self.on_migrated = on_migrated
        self.on_removed = on_removed
        self._locks: dict[int, asyncio.Lock] = {}

    async def deliver(
        self, response: Response, chat_id: int, query: CallbackQuery | None = None
    ) -> None:
        """Answer the button press and rewrite its message while sending every reply.

        For responses not kept in the outbox (an error, a group's change); kept ones go through
        bot/tg/courier.py. The chat's own replies go out in order, one after the other; replies
        for other chats follow once the chat's are out.
        """
        own = [r for r in response.replies if (r.chat_id or chat_id) == chat_id]
        others = [r for r in response.replies if (r.chat_id or chat_id) != chat_id]
        if query is not None or own:  # lock only a chat that gets something (no re-entry)
            async with self.lock(chat_id):
                # The new messages, the toast and the rewrite of the pressed message (an edit
                # keeps its place in the chat) do not wait on each other: one round trip. The
                # next question leaves first: it is what the member waits for.
                await side_by_side(
                    self._send_in_order(own, chat_id), self._acknowledge(query, response)
                )
        for reply in others:
            await self.send(reply, reply.chat_id)

    async def _acknowledge(self, query: CallbackQuery | None, response: Response) -> None:
        """Answer a button press (its spinner stops) and rewrite its message, side by side."""
        if query is None:
            return
        steps = [self.answer_query(query, response.notice)]
        if response.edited is not None:
            message = query.message
            steps.append(self.edit(message.chat.id, message.message_id, response.edited))
        await side_by_side(*steps)

    async def _send_in_order(self, replies: list[Reply], chat_id: int) -> None:
        for reply in replies:
            await self.send_unlocked(reply, chat_id)

    async def send(self, reply: Reply, chat_id: int) -> Outcome:
        """Send one reply, split to Telegram's length limit, the buttons under the last part."""
        async with self.lock(chat_id):
            outcome, _ = await self.send_unlocked(reply, chat_id)
            return outcome

    async def send_unlocked(self, reply: Reply, chat_id: int) -> tuple[Outcome, int | None]:
        """``send`` for a caller holding the chat's lock; also Telegram's id of the last part
        (the one with the buttons), once sent."""
        text, photo_sent = reply.text, False
        if reply.photo is not None:
            photo = await self._guarded(
                chat_id, lambda: self.bot.send_photo(chat_id, reply.photo), None, refusable=True
            )
            if photo is None:  # the photo itself was refused: the text goes, with a note, once
                text = f"{text}\n\n{reply.photo_refused}" if reply.photo_refused else text
            elif photo is not Outcome.SENT:
                return photo, None
            photo_sent = photo is Outcome.SENT
        made: list[int | None] = []
        sends = []
        parts = split_html(text)
        for n, part in enumerate(parts, 1):
            markup = keyboard(reply) if n == len(parts) else None
            sends.append((self._message(chat_id, part, markup, made), (part, markup)))
        for n, (send, resend) in enumerate(sends):
            outcome = await self._guarded(chat_id, send, resend)
            if outcome is not Outcome.SENT:
                partial = (n or photo_sent) and outcome in (Outcome.FAILED, Outcome.REFUSED)
                return (Outcome.PARTIAL if partial else outcome), None
        return Outcome.SENT, made[-1] if made else None

    def _message(self, chat_id: int, text: str, markup, made: list[int | None] | None = None):
        async def send() -> None:
            answer = await self.bot.post_unparsed(
                "sendMessage", chat_id=chat_id, text=text, **_html_with(markup)
            )
            if made is not None:
                made.append(answer.get("message_id") if isinstance(answer, dict) else None)

        return send

    async def _guarded(
        self, chat_id: int, send, resend: tuple | None, *, refusable: bool = False
    ) -> Outcome | None:
        """Run a send; a migrated group, a removal or a blocked user is handled, not raised.

        ``refusable``: a 400 refusing what was sent (a photo Telegram cannot process) returns
        None instead of FAILED: sending it again would only be refused again.
        """
        try:
            await _with_network_retries(send)
            return Outcome.SENT
        except ChatMigrated as exc:
            return await self._follow_migration(chat_id, exc.new_chat_id, resend)
        except Forbidden as exc:
            await self._forbidden(chat_id, exc)
            return Outcome.BLOCKED
        except BadRequest as exc:
            log.warning("chat %s: Telegram refused what was sent (%s)", chat_id, exc.message)
            return None if refusable else Outcome.REFUSED
        except NoAnswer as exc:
            log.warning("chat %s: no answer from Telegram to a send (%s)", chat_id, exc.message)
            return Outcome.UNANSWERED
        except TelegramError as exc:
            log.warning("could not send to chat %s (%s)", chat_id, exc.message)
            return Outcome.FAILED

    async def _follow_migration(self, old: int, new: int, resend: tuple | None) -> Outcome:
        log.info("group %s became supergroup %s", old, new)
        await self.deliver(await self.on_migrated(old, new), new)
        if resend is None:
            return Outcome.FAILED
        return await self._guarded(new, self._message(new, *resend), None)

    async def _forbidden(self, chat_id: int, exc: Forbidden) -> None:
        if chat_id < 0:
            log.warning("removed from group %s (%s): no more posts there", chat_id, exc.message)
            await self.deliver(await self.on_removed(chat_id), chat_id)
        else:
            log.info("user %s blocked the bot (%s)", chat_id, exc.message)

    async def answer_query(self, query: CallbackQuery, notice: str | None) -> None:
        """Always answer, so the button stops spinning; a notice shows as a short toast."""
        text = html.unescape(TAG.sub("", notice)) if notice else None
        if text and len(text) > CallbackQueryLimit.ANSWER_CALLBACK_QUERY_TEXT_LENGTH:
            text = text[: CallbackQueryLimit.ANSWER_CALLBACK_QUERY_TEXT_LENGTH - 1] + "…"
        try:
            await query.answer(text)
        except TelegramError as exc:
            log.info("could not answer callback %s: %s", query.id, exc)

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> Outcome:
        """Rewrite a message; REFUSED when there is nothing to rewrite (it is gone, or already
        reads so: a press twice)."""
        try:
            await self.bot.post_unparsed(
                "editMessageText",
                chat_id=chat_id,
                message_id=message_id,
                text=split_html(reply.text)[0],
                **_html_with(keyboard(reply)),
            )
            return Outcome.SENT
        except BadRequest as exc:
            log.info("could not edit message %s: %s", message_id, exc.message)
            return Outcome.REFUSED
        except Forbidden as exc:
            await self._forbidden(chat_id, exc)
            return Outcome.BLOCKED
        except NoAnswer:  # most likely done; rewriting it again could only repeat it
            log.info("no answer from Telegram to an edit of message %s", message_id)
            return Outcome.UNANSWERED
        except TelegramError as exc:
            log.warning("could not edit message %s (%s)", message_id, type(exc).__name__)
            return Outcome.FAILED

    async def probe(self) -> bool:
        """Whether Telegram answers a harmless call (getMe) in time now."""
        try:
            await self.bot.post_unparsed("getMe")
            return True
        except TelegramError as exc:
            log.info("Telegram is not answering yet (%s)", type(exc).__name__)
            return False

    def lock(self, chat_id: int) -> asyncio.Lock:
        """The chat's lock: whoever sends to the chat holds it, so its messages keep their order."""
        if len(self._locks) > 10_000:  # forget idle chats
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(chat_id, asyncio.Lock())


async def side_by_side(*steps: Awaitable[object]) -> None:
    """Run steps concurrently; one failing neither stops the others nor escapes (logged)."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.error("a delivery step failed", exc_info=outcome)


async def _with_network_retries(send: Callable[[], Awaitable[object]]) -> None:
    """Retry a send that never reached Telegram (no connection) a few times.

    Nothing else is retried here: Telegram has no idempotent send, so a send that went out
    and got no answer may have arrived, and one Telegram answered with an error is the
    outbox's to send again later (bot/tg/courier.py), at most once if it went unanswered.
    """
    for attempt in range(1, NETWORK_ATTEMPTS + 1):
        try:
            await send()
            return
        except NotSent:
            if attempt == NETWORK_ATTEMPTS:
                raise
            await asyncio.sleep(attempt)


def _html_with(markup: InlineKeyboardMarkup | None) -> dict[str, object]:
    """The parameters every message shares: HTML, no link previews, the buttons if any."""
    params: dict[str, object] = {"parse_mode": ParseMode.HTML, "link_preview_options": NO_PREVIEW}
    if markup is not None:
        params["reply_markup"] = markup
    return params


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
            for row in reply.buttons
        ]
    )


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def split_html(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Cut a message into parts Telegram accepts, at line breaks where possible.

    Our HTML never spans lines, so cutting between lines keeps tags balanced. A single line
    longer than the limit loses its formatting and is cut as escaped plain text.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        for piece in [line] if telegram_length(line) <= limit else _cut_line(line, limit):
            candidate = f"{current}\n{piece}" if current else piece
            if telegram_length(candidate) <= limit:
                current = candidate
            else:
                parts.append(current)
                current = piece
    parts.append(current)
    return [part for part in parts if part.strip()] or ["…"]


def _cut_line(line: str, limit: int) -> list[str]:
    plain = html.unescape(TAG.sub("", line))
    # Escaping can grow a character to 5 ("&amp;") and UTF-16 doubles astral ones: stay safe.
    step = max(1, limit // 10)
    return [html.escape(plain[i : i + step], quote=False) for i in range(0, len(plain), step)]
