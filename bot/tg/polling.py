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
import time
from collections import defaultdict

from telegram import Update
from telegram.error import Conflict, TelegramError
from telegram.ext import Application

from bot.tg.lifecycle import running, stop_on_signals
from bot.tg.raw_updates import chat_of, read_updates, tell_unreadable, update_id_of

log = logging.getLogger(__name__)
POLL_SECONDS = 10  # how long one getUpdates call waits for updates
POLL_READ_MARGIN = 5  # seconds a long poll's answer may take beyond POLL_SECONDS
CONFLICT_WARNING_SECONDS = 60  # another poller, or Telegram failing: one warning a minute
RETRY_SECONDS = 1.0  # after a failed getUpdates
CONFIRM_SECONDS = 2  # the confirming getUpdates at the stop


async def poll(application: Application, allowed_updates: list[str]) -> None:
    """Run the application on long polling until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    await serve(application, allowed_updates, stop)


async def serve(application: Application, allowed_updates: list[str], stop: asyncio.Event) -> None:
    """Run the application on long polling until ``stop`` is set."""
    async with running(application):
        try:
            await application.bot.delete_webhook()
        except TelegramError as exc:
            # A webhook left set makes getUpdates answer 409, which says so: poll anyway.
            log.warning("could not remove a webhook, if one is set (%s); polling anyway", exc)
        offset = await _poll_until(application, stop, allowed_updates)
        if offset:
            await _confirm(application, offset)


async def _confirm(application: Application, offset: int) -> None:
    """Tell Telegram the last batch was handled, so it is not sent again after the restart.
    Not worth a slow stop: a batch sent again is refused by the database as handled."""
    try:
        await application.bot.get_updates(
            offset=offset, timeout=0, read_timeout=CONFIRM_SECONDS, connect_timeout=CONFIRM_SECONDS
        )
    except TelegramError as exc:
        log.warning("could not confirm the last updates at the stop (%s)", type(exc).__name__)


async def _poll_until(application: Application, stop: asyncio.Event, allowed: list[str]) -> int:
    offset = 0
    conflicts = OncePer(CONFLICT_WARNING_SECONDS)
    failures = OncePer(CONFLICT_WARNING_SECONDS)
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
            # Its connection is the getUpdates pool's only one: free it for the confirmation.
            await asyncio.gather(fetch, return_exceptions=True)
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
        except TelegramError as exc:
            if failures.due():
                log.warning("getUpdates failed (%s); trying again every second", exc)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        updates = read_updates(raw, application.bot)
        if updates:
            await handle_batch(application, updates)
        if len(updates) < len(raw):
            await tell_unreadable(application, raw, updates)
        offset = max([offset - 1, *(update_id_of(data) for data in raw)]) + 1
    return offset


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
        by_chat[chat_of(update)].append(update)
    async with asyncio.TaskGroup() as group:
        for own_updates in by_chat.values():
            group.create_task(_in_order(application, own_updates))


async def _in_order(application: Application, updates: list[Update]) -> None:
    for update in updates:
        await application.process_update(update)  # returns once the dialog committed
