"""Starting and stopping the bot, around long polling or the webhook server.

A service manager stops the bot with SIGTERM and kills it if it lingers, so stopping is
prompt whatever Telegram does: updates stop being taken, the turn in hand finishes (its
answers are committed with its replies), replies under way get a moment, and whatever is still
unsent stays in the outbox for the next start (bot/tg/courier.py). A step of the stop that
fails is one log line, never a traceback nor a failing exit code: nothing is lost by it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from telegram.error import TelegramError
from telegram.ext import Application

log = logging.getLogger(__name__)
STOP_SECONDS = 10  # from the signal to the exit, whatever Telegram or the network does
DELIVERY_GRACE_SECONDS = 2  # replies on their way may finish; the rest waits in the outbox
RETRY_SECONDS = (2, 5, 15, 60, 300)  # cosmetic start-up calls, after a failure


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT or SIGTERM, and exit for sure STOP_SECONDS later."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            _exit_after(STOP_SECONDS)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def _exit_after(seconds: float) -> None:
    """A thread, not a loop timer: a stop stuck in a blocking call must end too. Exiting
    loses nothing: committed answers are in the database, unsent replies in the outbox."""

    def exit_now() -> None:
        log.warning(
            "stopping took longer than %s s; exiting now (unsent replies go out at the next start)",
            seconds,
        )
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


@asynccontextmanager
async def running(application: Application) -> AsyncIterator[None]:
    """The application started (its outbox sent, its ticks going) for the body's duration,
    then stopped as the module says."""
    try:
        await application.initialize()
    except BaseException:
        await application.bot.shutdown()  # its HTTP sessions; the application never started
        raise
    try:
        await application.post_init(application)
        await application.start()
        yield
    finally:
        adapter = application.bot_data.get("adapter")
        if adapter is not None:
            await _quietly("cutting replies short", adapter.cut_short(DELIVERY_GRACE_SECONDS))
        if application.running:
            await _quietly("stopping", application.stop())
            await _quietly("stopping the ticks and the outbox", application.post_stop(application))
        await _quietly("closing connections", application.shutdown())


async def _quietly(step: str, work: Awaitable[object]) -> None:
    try:
        await work
    except Exception as exc:
        log.warning("while stopping: %s failed (%s)", step, type(exc).__name__)


async def keep_trying(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
    """Call ``attempt`` until Telegram answers it, waiting longer after each failure: for calls
    that must not keep the bot from serving (a 5xx or a timeout from Telegram or a proxy)."""
    for failures in itertools.count():
        try:
            await attempt()
            return
        except Exception as exc:  # also an answer PTB cannot read (an emulator's, say)
            wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            reason = exc if isinstance(exc, TelegramError) else type(exc).__name__
            log.warning("could not %s (%s); trying again in %s s", what, reason, wait)
            await asyncio.sleep(wait)
