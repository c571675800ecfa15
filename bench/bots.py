"""The two bots under load, long-polling the fake Bot API from this process.

* the floor: a minimal PTB echo bot (one MessageHandler that replies with the text);
* StageCoach: ``build_application`` over ``build_app``, as ``stagecoach run`` builds it, without
  the nudge/digest ticks (``schedule=False``) and with Telegram's flood limits lifted (the
  product's own rate limiter, its limits set out of reach, so its cost is still counted),
  long-polling with its own loop (``bot/tg/polling.py``) as ``stagecoach run`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.databases import Database
from bot.cli.app import build_app
from bot.cli.config import DatabaseSettings, Settings, TelegramSettings
from bot.tg.application import ALLOWED_UPDATES, build_application, settle_for_running
from bot.tg.polling import serve
from bot.tg.ratelimit import TelegramRateLimiter

POLL_TIMEOUT = 10  # seconds of long polling when idle; updates end a poll at once


def unlimited() -> TelegramRateLimiter:
    """The product's limiter with limits no benchmark reaches (the fake enforces none)."""
    huge = 1_000_000
    return TelegramRateLimiter(
        private_burst=huge,
        private_per_second=huge,
        group_per_minute=huge,
        overall_per_second=huge,
    )


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text(update.message.text)


def echo_bot(token: str, base_url: str) -> Application:
    application = ApplicationBuilder().token(token).base_url(base_url).build()
    application.add_handler(MessageHandler(filters.TEXT, _echo))
    return application


def stagecoach_bot(token: str, base_url: str, database: Database):
    """StageCoach's application, its app and what stops its background checkpoints."""
    settings = Settings(
        database=DatabaseSettings(url=database.url),
        telegram=TelegramSettings(base_url=base_url),
    )
    app = build_app(settings)
    application = build_application(app, token, rate_limiter=unlimited(), schedule=False)
    stop = settle_for_running(app)  # as `stagecoach run` does
    return application, app, stop


@asynccontextmanager
async def polling(application: Application) -> AsyncIterator[Application]:
    """Run ``application`` like run_polling does, inside the caller's event loop."""
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()
    await application.updater.start_polling(
        poll_interval=0, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES
    )
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)


@asynccontextmanager
async def serving(application: Application) -> AsyncIterator[Application]:
    """Run StageCoach's own long polling inside the caller's event loop until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, ALLOWED_UPDATES, stop))
    try:
        yield application
    finally:
        stop.set()
        await task
