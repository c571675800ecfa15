"""Webhook mode: Telegram POSTs each update, and hears back once the update was handled.

Telegram sends an update again until its POST is answered with a 2xx. PTB's webhook server
answers as soon as an update is queued, so a crash between the answer and the commit loses the
update. Here the answer goes out after the dialog committed (and Telegram's redelivery of what
was never answered is refused by the database as already handled), which makes webhook mode
as safe as polling, and lets several instances share a token behind a load balancer.

The server is written for an unauthenticated internet in front of it: the secret header is
compared before a byte of the body is read, a body over MAX_BODY_BYTES is refused without being
kept, and a body that is not an update gets a 400 and one log line. A reverse proxy in front
must wait longer than a turn takes (README).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.tg.lifecycle import keep_trying, running, stop_on_signals
from bot.tg.raw_updates import chat_of, read_updates, tell_unreadable, update_id_of

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates are a few kilobytes (a message is at most 4096 characters); a body far
# larger is not from Telegram and must not cost memory.
MAX_BODY_BYTES = 256 * 1024
STOP_SECONDS = 5  # the turns in hand finish; Telegram sends the unanswered ones again


class WebhookServer:
    """An HTTP server on ``listen``:``port`` that hands Telegram's POSTs to ``path`` to the
    application, one chat's updates in the order they came."""

    def __init__(self, application: Application, *, listen: str, port: int, path: str, secret: str):
        self.application = application
        self.listen = listen
        self.port = port
        self.path = "/" + path.strip("/")
        self.secret = secret
        self._chats: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(self.path, self.receive)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_SECONDS)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen, self.port).start()

    async def stop(self) -> None:
        """Stop taking updates; those in hand finish first."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def receive(self, request: web.Request) -> web.Response:
        offered = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(offered, self.secret.encode()):
            return web.Response(status=403)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return web.Response(status=413)
        try:
            data = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past reading
            log.warning("a webhook body that is not JSON was refused")
            return web.Response(status=400)
        if not isinstance(data, dict) or update_id_of(data) < 0:
            log.warning("a webhook body that is not an update was refused")
            return web.Response(status=400)
        try:
            updates = read_updates([data], self.application.bot)
            if updates:
                await self._handle(updates[0])
            else:  # an update this bot cannot read: logged, its sender told, not sent again
                await tell_unreadable(self.application, [data], updates)
        except Exception as exc:  # the dialog's own errors are handled inside; this is a bug
            kind = type(exc).__name__
            log.warning("update %s failed (%s); Telegram sends it again", update_id_of(data), kind)
            return web.Response(status=500)
        return web.Response()  # only now: the turn committed

    async def _handle(self, update: Update) -> None:
        chat = chat_of(update)
        lock = self._chats.get(chat)
        if lock is None:
            lock = self._chats[chat] = asyncio.Lock()
        async with lock:
            await self.application.process_update(update)


async def serve(
    application: Application, server: WebhookServer, url: str, allowed: list[str]
) -> None:
    """Run the application behind ``server`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with running(application):
        await server.start()
        # Telegram may be slow to answer at start; updates reach an existing webhook meanwhile.
        registration = asyncio.ensure_future(
            keep_trying(
                "register the webhook with Telegram",
                lambda: application.bot.set_webhook(
                    url, secret_token=server.secret, allowed_updates=allowed
                ),
            )
        )
        try:
            await stop.wait()
        finally:
            registration.cancel()
            await server.stop()
