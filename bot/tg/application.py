"""The PTB Application: handlers, rate limits, error handling, polling or webhook."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.dialog.events import Incoming, Queued, Reply, Response
from bot.dialog.membership import member_language
from bot.dialog.router import Dialog
from bot.jobs.digest_runner import DigestRunner
from bot.jobs.nudge_runner import NudgeRunner
from bot.tg.coach_bot import CoachBot
from bot.tg.courier import Courier
from bot.tg.delivery import Delivery, side_by_side
from bot.tg.incoming import GroupMigrated, RemovedFromGroup, read_update
from bot.tg.lifecycle import keep_trying
from bot.tg.menu import register_commands
from bot.tg.polling import poll
from bot.tg.ratelimit import TelegramRateLimiter
from bot.tg.scheduler import Ticker
from bot.tg.transport import AiohttpRequest
from bot.tg.webhook import WebhookServer
from bot.tg.webhook import serve as serve_webhook
from flows.i18n import t
from storage.db import checkpoint_in_background
from storage.event_loop import LoopDatabase
from storage.file_watch import watch_sqlite_file

if TYPE_CHECKING:  # the wiring that calls in here; only its type is needed
    from bot.cli.app import App

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


class TelegramAdapter:
    """Turns each update into a dialog event and delivers what the dialog answers."""

    def __init__(self, dialog: Dialog, application: Application, connections: int):
        # Chat turns run on the event loop: inline on SQLite, which answers inside this process
        # (a thread hand-off would cost about as much as the turn); on PostgreSQL through the
        # async driver, so other chats' turns run while one waits for the server.
        self.database = LoopDatabase(dialog.engine, connections)
        self.dialog = dialog
        self.application = application
        self.delivery = Delivery(application.bot, self._migrated, self._removed)
        self.courier = Courier(self.delivery, self.database, catch_up=self._catch_up)
        # Updates being handled or delivered; zero means the bot has caught up (tests, shutdown).
        self.in_flight = 0
        self._deliveries: set[asyncio.Task] = set()

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.in_flight += 1
        try:
            await self._on_update(update)
        finally:
            self.in_flight -= 1

    async def _on_update(self, update: Update) -> None:
        meaning = read_update(update)
        if meaning is None:
            return
        if isinstance(meaning, Incoming) and meaning.text is not None:
            chat = meaning.chat_id if meaning.chat_id is not None else meaning.sender.user_id
            meaning = replace(meaning, shown=self.courier.newest_shown(chat))
        if isinstance(meaning, GroupMigrated):
            await self._migrated(meaning.old_chat_id, meaning.new_chat_id)
            return
        if isinstance(meaning, RemovedFromGroup):
            response = await self._removed(meaning.chat_id)
            await self.delivery.deliver(response, meaning.chat_id)
            return
        if self.database.inline or not self.dialog.reads_long(meaning):
            engine = self.database.engine
            response = await self.database.run(
                self.dialog.handle, meaning, engine=engine, outbox=True
            )
        else:
            # A whole team's digest can take seconds for a large team: in a thread, so the loop
            # keeps sending. Not on SQLite: its write transaction would hold up every other
            # turn anyway (one writer), and they would wait for the lock on the loop.
            response = await asyncio.to_thread(self.dialog.handle, meaning, outbox=True)
        self.courier.note_kept(response.queued)  # before the chat's next turn can start
        # Deliver in the background: a chat waiting out its flood limit must not hold up others.
        self.in_flight += 1
        delivery = self.application.create_task(
            self._deliver(response, meaning.chat_id, update.callback_query), update=update
        )
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    async def _deliver(self, response: Response, chat_id: int, query) -> None:
        try:
            if not response.queued:  # not kept: an error's apology, a redelivery's nothing
                await self.delivery.deliver(response, chat_id, query)
            elif query is None:
                await self.courier.deliver(response.queued)
            else:  # the toast does not wait for the messages, nor they for it
                await side_by_side(
                    self.courier.deliver(response.queued),
                    self.delivery.answer_query(query, response.notice),
                )
        finally:
            self.in_flight -= 1

    async def cut_short(self, grace: float) -> None:
        """At the stop: replies on their way get ``grace`` seconds, then stop being sent (a
        flood wait can last minutes); what was not sent waits in the outbox for the next start.
        """
        if not self._deliveries:
            return
        _, late = await asyncio.wait(set(self._deliveries), timeout=grace)
        for delivery in late:
            delivery.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            log.info("%s chats' replies left in the outbox for the next start", len(late))

    @property
    def idle(self) -> bool:
        """No update being handled, no reply being sent or recorded (tests, shutdown)."""
        return self.in_flight == 0 and self.courier.idle

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log with context; tell a member in a private chat that something went wrong.

        The log line names the update and its chat, never its content (what a rep wrote).
        """
        if isinstance(update, Update):
            chat = update.effective_chat
            where = f"update {update.update_id} in chat {chat.id if chat else '?'}"
        else:
            where = f"a {type(update).__name__}"
        log.error("error while handling %s", where, exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        chat = update.effective_chat
        if chat.type != ChatType.PRIVATE:
            return
        user = update.effective_user
        lang = member_language(user.language_code if user else None, self.dialog.config)
        reply = Reply(t(lang, "dialog.error_unsure"))
        try:
            await self.delivery.send(reply, chat.id)
        except Exception:  # the error handler must never raise
            log.exception("could not tell chat %s about the error", chat.id)

    async def not_saved(self, chat_id: int, language_code: str | None) -> None:
        """Tell a person their last update could not be read, so nothing of it was saved."""
        lang = member_language(language_code, self.dialog.config)
        await self.delivery.send(Reply(t(lang, "dialog.error")), chat_id)

    def _catch_up(self, chat_id: int, stale: list[int]) -> list[Queued]:
        """What the courier sends instead of replies that waited too long (on the loop's
        database, as the courier's own reads)."""
        return self.dialog.catch_up(chat_id, stale, engine=self.database.engine).queued

    async def _migrated(self, old_chat_id: int, new_chat_id: int) -> Response:
        return await self.database.run(
            self.dialog.group_migrated, old_chat_id, new_chat_id, engine=self.database.engine
        )

    async def _removed(self, chat_id: int) -> Response:
        return await self.database.run(
            self.dialog.group_removed, chat_id, engine=self.database.engine
        )


def build_application(
    app: App,
    token: str,
    rate_limiter: TelegramRateLimiter | None = None,
    *,
    schedule: bool = True,
) -> Application:
    """A PTB Application over the app's dialog, talking to ``telegram.base_url``.

    Args:
        schedule: start the nudge and digest ticks with the bot (tests drive them by hand).
    """
    rate_limiter = rate_limiter or TelegramRateLimiter()
    bot = CoachBot(
        token,
        base_url=app.settings.telegram.base_url,
        request=AiohttpRequest(connection_pool_size=rate_limiter.max_in_flight),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
        rate_limiter=rate_limiter,
    )
    application = ApplicationBuilder().bot(bot).post_init(_post_init).post_stop(_post_stop).build()
    adapter = TelegramAdapter(app.dialog, application, app.settings.database.connections)
    application.bot_data["adapter"] = adapter
    application.bot_data["ticker"] = build_ticker(app, adapter.delivery)
    application.bot_data["schedule"] = schedule
    application.bot_data["tick_seconds"] = app.settings.nudges.tick_seconds
    application.add_handler(TypeHandler(Update, adapter.on_update))
    application.add_error_handler(adapter.on_error)
    return application


def build_ticker(app: App, delivery: Delivery) -> Ticker:
    return Ticker(*build_runners(app), delivery)


def build_runners(app: App) -> tuple[NudgeRunner, DigestRunner]:
    instance = f"{socket.gethostname()}:{os.getpid()}"
    config = app.dialog.config
    nudges = NudgeRunner(app.engine, app.playbook, config, instance)
    digests = DigestRunner(
        app.engine, app.playbook, config, digest_time=app.settings.digest.time, instance=instance
    )
    return nudges, digests


async def _post_init(application: Application) -> None:
    """Send what waits in the outbox, introduce the bot in the background, start ticking."""
    adapter: TelegramAdapter = application.bot_data["adapter"]
    application.bot_data["introduction"] = asyncio.ensure_future(_introduce(application))
    await adapter.courier.start()
    if application.bot_data["schedule"]:
        application.bot_data["ticker"].start(application.bot_data["tick_seconds"])


async def _introduce(application: Application) -> None:
    """Learn the bot's username (for t.me links) and register the command menus.

    Both are cosmetic: asked until Telegram answers, in the background, so that a 5xx or a
    timeout from Telegram (or a proxy before it) never keeps the bot from serving.
    """
    adapter: TelegramAdapter = application.bot_data["adapter"]

    async def introduce() -> None:
        me = await application.bot.get_me()
        adapter.dialog.config = replace(adapter.dialog.config, bot_username=me.username)
        await register_commands(application.bot, adapter.dialog.config.language)

    await keep_trying("learn the bot's name or set its command menus", introduce)


async def _post_stop(application: Application) -> None:
    """Stop ticking before the bot shuts down, so no tick sends through a closed bot; close
    the chat turns' connections while their event loop still runs."""
    introduction = application.bot_data.get("introduction")
    if introduction is not None:
        introduction.cancel()
    application.bot_data["ticker"].stop()
    adapter: TelegramAdapter = application.bot_data["adapter"]
    await adapter.courier.stop()
    await adapter.database.close()


def preview_digests(app: App) -> list:
    """Every manager's digest as of now, for printing (nothing is sent or recorded)."""
    _, digests = build_runners(app)
    return digests.preview(datetime.now(UTC))


async def send_digests_now(app: App, token: str) -> int:
    """Send today's digest to every manager who has not had it yet; returns how many went."""
    application = build_application(app, token, schedule=False)
    async with application:
        try:
            ticker: Ticker = application.bot_data["ticker"]
            return await ticker.digest_tick(any_time=True)
        finally:
            await application.bot_data["adapter"].database.close()


def freeze_long_lived_objects() -> None:
    """Hide everything loaded so far from Python's cyclic garbage collector.

    Modules, playbooks and locale data live as long as the process, yet every full collection
    would scan them all again: a pause that every chat feels (bench/README.md). Frozen, they
    are skipped; garbage made later is collected as usual.
    """
    gc.collect()
    gc.freeze()


def settle_for_running(app: App) -> Callable[[], None]:
    """What a long-running bot does before it serves; returns what stops its threads."""
    stop_checkpoints = checkpoint_in_background(app.engine)  # none inside a chat turn
    stop_watching = watch_sqlite_file(app.engine)
    freeze_long_lived_objects()

    def stop() -> None:
        stop_watching()
        stop_checkpoints()

    return stop


def run(app: App, token: str) -> None:
    """Run until stopped: long polling, or a webhook server for several instances."""
    application = build_application(app, token)
    settle_for_running(app)
    telegram = app.settings.telegram
    if telegram.mode == "webhook":
        server = WebhookServer(
            application,
            listen=telegram.webhook_listen,
            port=telegram.webhook_port,
            path=telegram.webhook_path,
            secret=telegram.webhook_secret,
        )
        asyncio.run(serve_webhook(application, server, telegram.webhook_url, ALLOWED_UPDATES))
    else:
        asyncio.run(poll(application, ALLOWED_UPDATES))
