"""Long polling that confirms updates to Telegram only after they were handled.

PTB's Updater moves the getUpdates offset as soon as an update is queued, before the handler
has committed; a bot killed in between would never see that update again. Here the offset
moves past a batch of updates only once ``process_update`` returned for each of them, i.e.
after the dialog committed, so Telegram redelivers anything unhandled and the database refuses
what was handled twice.

Within a batch, different chats' updates are handled side by side and each chat's own updates
in order: while one rep's turn waits for the database server, the next rep's turn runs (a team
reporting after a day of visits must not queue behind one another's round trips).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import defaultdict
from typing import Any

from telegram import Bot, Update
from telegram.error import Conflict, TelegramError
from telegram.ext import Application

log = logging.getLogger(__name__)
POLL_SECONDS = 10  # how long one getUpdates call waits for updates
POLL_READ_MARGIN = 5  # seconds a long poll's answer may take beyond POLL_SECONDS
CONFLICT_WARNING_SECONDS = 60  # another poller on the token: one warning a minute
RETRY_SECONDS = 1.0  # after a failed getUpdates


async def poll(application: Application, allowed_updates: list[str]) -> None:
    """Run the application on long polling until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(application, allowed_updates, stop)


async def serve(application: Application, allowed_updates: list[str], stop: asyncio.Event) -> None:
    """Run the application on long polling until ``stop`` is set."""
    try:
        await application.initialize()
    except BaseException:
        await application.bot.shutdown()  # its HTTP sessions; the application never started
        raise
    try:
        await application.post_init(application)
        try:
            await application.bot.delete_webhook()
        except TelegramError as exc:
            # A webhook left set makes getUpdates answer 409, which says so: poll anyway.
            log.warning("could not remove a webhook, if one is set (%s); polling anyway", exc)
        await application.start()
        offset = await _poll_until(application, stop, allowed_updates)
        if offset:
            await application.bot.get_updates(offset=offset, timeout=0)  # confirm the last
    finally:
        if application.running:
            await application.stop()
            await application.post_stop(application)
        await application.shutdown()


async def _poll_until(application: Application, stop: asyncio.Event, allowed: list[str]) -> int:
    offset = 0
    conflicts = OncePer(CONFLICT_WARNING_SECONDS)
    while not stop.is_set():
        fetch = asyncio.ensure_future(
            application.bot.get_updates_unparsed(
                offset=offset,
                timeout=POLL_SECONDS,
                allowed_updates=allowed,
                read_timeout=POLL_SECONDS + POLL_READ_MARGIN,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not fetch.done():
            fetch.cancel()
            break
        try:
            raw = fetch.result()
        except Conflict:
            if conflicts.due():
                log.warning(
                    "another process is polling this bot's token: only one may. Stop the other "
                    "one, or run several instances in webhook mode (README). Trying again."
                )
            await asyncio.sleep(RETRY_SECONDS)
            continue
        except TelegramError:
            log.exception("getUpdates failed; trying again in a second")
            await asyncio.sleep(RETRY_SECONDS)
            continue
        updates = read_updates(raw, application.bot)
        if updates:
            await handle_batch(application, updates)
        if len(updates) < len(raw):
            await _tell_unreadable(application, raw, updates)
        offset = max([offset - 1, *(_update_id(data) for data in raw)]) + 1
    return offset


def read_updates(raw: list[Any], bot: Bot) -> list[Update]:
    """The updates of a getUpdates answer that can be read; each other one is logged with its
    id (never its content) and skipped, so that no update can stop the bot: Telegram would
    send it again at every start."""
    updates = []
    for data in raw:
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            updates.append(Update.de_json(data, bot))
        except Exception as exc:
            # The exception's kind only: its message may quote what the update holds.
            kind = type(exc).__name__
            log.warning("update %s could not be read (%s); skipped", _update_id(data), kind)
    return updates


async def _tell_unreadable(application: Application, raw: list[Any], read: list[Update]) -> None:
    """Tell the sender of each update that could not be read, in a private chat, that it was
    not saved: they would otherwise wait for an answer that never comes."""
    adapter = application.bot_data.get("adapter")
    done = {update.update_id for update in read}
    for data in raw:
        sender = _private_sender(data) if _update_id(data) not in done else None
        if adapter is not None and sender is not None:
            await adapter.not_saved(*sender)


def _private_sender(data: Any) -> tuple[int, str | None] | None:
    """The private chat an unreadable update came from and its sender's language, if the raw
    update says so plainly; None for anything else (a group is not written to)."""
    if not isinstance(data, dict):
        return None
    for kind in ("message", "edited_message", "callback_query"):
        part = data.get(kind)
        if not isinstance(part, dict):
            continue
        sender = part.get("from")
        chat = part.get("chat") if kind != "callback_query" else sender
        if not isinstance(sender, dict) or not isinstance(chat, dict):
            return None
        chat_id, user_id = chat.get("id"), sender.get("id")
        if kind != "callback_query" and chat.get("type") != "private":
            return None
        if not _is_int(chat_id) or chat_id != user_id:
            return None
        code = sender.get("language_code")
        return chat_id, code if isinstance(code, str) else None
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**52


def _update_id(data: Any) -> int:
    """An update's id, or -1 when it has none that is an integer."""
    update_id = data.get("update_id") if isinstance(data, dict) else None
    return update_id if isinstance(update_id, int) and not isinstance(update_id, bool) else -1


class OncePer:
    """Says when an event is due to be reported again: at most once every ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._last: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True


async def handle_batch(application: Application, updates: list[Update]) -> None:
    """Handle every update: one task per chat, each chat's updates in their order."""
    by_chat: dict[int, list[Update]] = defaultdict(list)
    for update in updates:
        by_chat[_chat(update)].append(update)
    async with asyncio.TaskGroup() as group:
        for own_updates in by_chat.values():
            group.create_task(_in_order(application, own_updates))


async def _in_order(application: Application, updates: list[Update]) -> None:
    for update in updates:
        await application.process_update(update)  # returns once the dialog committed


def _chat(update: Update) -> int:
    """The chat an update belongs to: a person's private chat (their conversation: messages
    and button presses alike), or a group (its link to the team changes in order)."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return -update.update_id  # neither (no such update is allowed today): on its own
