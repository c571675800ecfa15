"""A real PTB Application of StageCoach talking HTTP to the fake Bot API, driven like Telegram."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from bot.cli.app import App, build_app
from bot.cli.config import DatabaseSettings, Settings, TelegramSettings
from bot.tg.application import build_application
from bot.tg.ratelimit import TelegramRateLimiter
from bot.tg.webhook import WebhookServer
from storage.db import transaction
from storage.invites import create_invite
from storage.teams import add_member, create_team
from tests.fake_bot_api import FakeBotApi

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
SETTLE_TIMEOUT = 15  # seconds; a bot that takes longer has hung, and the test says so


def fast_limiter() -> TelegramRateLimiter:
    """Telegram's limits scaled up, so tests run fast; the 429 test uses the real ones."""
    return TelegramRateLimiter(
        private_burst=50, private_per_second=200, group_per_minute=600, overall_per_second=1000
    )


class TelegramWorld:
    """One running bot; ``say`` and ``press`` wait until it has answered."""

    def __init__(self, fake: FakeBotApi, engine: Engine, limiter: TelegramRateLimiter | None):
        self.fake = fake
        self.engine = engine
        self.limiter = limiter
        self.app: App | None = None
        self.application = None
        self.webhook: WebhookServer | None = None

    async def start(self, webhook_port: int | None = None, secret: str = "") -> TelegramWorld:
        """Start polling, or (with ``webhook_port``) a webhook server on 127.0.0.1."""
        url = self.engine.url.render_as_string(hide_password=False)
        settings = Settings(
            database=DatabaseSettings(url=url),
            telegram=TelegramSettings(base_url=self.fake.base_url),
        )
        self.app = build_app(settings)
        self.application = build_application(
            self.app, self.fake.token, rate_limiter=self.limiter or fast_limiter(), schedule=False
        )
        # Sent replies are marked at once, not in the product's short batches: ``settle`` waits
        # for the marks, and hundreds of settles would each wait out a batch.
        self.courier.mark_seconds = 0
        await self.application.initialize()
        await self.application.post_init(self.application)
        await self.application.bot_data["introduction"]  # the username, for t.me links
        await self.application.start()
        if webhook_port is None:
            await self.application.updater.start_polling(poll_interval=0, timeout=1)
        else:
            self.webhook = WebhookServer(
                self.application, listen="127.0.0.1", port=webhook_port, path="hook", secret=secret
            )
            await self.webhook.start()
            await self.application.bot.set_webhook("https://example.com/hook", secret_token=secret)
        return self

    @property
    def courier(self):
        """What sends the outbox (bot/tg/courier.py)."""
        return self.application.bot_data["adapter"].courier

    async def stop(self) -> None:
        if self.application is None:
            return
        if self.application.updater.running:
            await self.application.updater.stop()
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.application.post_stop(self.application)
        self.app.engine.dispose()
        self.application = None

    async def restart(self) -> None:
        """A new process: a fresh Application and database engine, the same database."""
        await self.stop()
        await self.start()

    # -- acting as users ------------------------------------------------------------------------

    async def say(self, user_id: int, text: str, **details: Any) -> int:
        update_id = self.fake.user_message(user_id, text, **details)
        await self.settle()
        return update_id

    async def press(self, user_id: int, label: str) -> None:
        message, button = self.find_button(user_id, label)
        self.fake.callback(user_id, button["callback_data"], message["message_id"])
        await self.settle()

    async def press_data(self, user_id: int, data: str, message_id: int) -> None:
        self.fake.callback(user_id, data, message_id)
        await self.settle()

    async def settle(self) -> None:
        """Wait until the bot has taken every update, handled it and delivered its replies.

        Each step is an event, never a quiet period: the bot asked for the updates after the
        last one (PTB's poller does so only once it has queued them; a webhook update is queued
        before its POST is answered), PTB's update queue has no unfinished update (an update is
        finished once the dialog committed and its delivery was started), and no delivery nor
        Bot API call is in flight.
        """
        adapter = self.application.bot_data["adapter"]
        await self.fake.wait_for(lambda: not self.fake.pending_updates, SETTLE_TIMEOUT)
        try:
            await asyncio.wait_for(self.application.update_queue.join(), SETTLE_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"an update is still being handled\n{self.fake.dump()}") from None
        await self.fake.wait_for(lambda: adapter.idle and self.fake.in_flight == 0, SETTLE_TIMEOUT)

    # -- reading what the bot did -----------------------------------------------------------------

    def texts(self, chat_id: int) -> list[str]:
        return [m.get("text", "") for m in self.fake.sent(chat_id)]

    def last_texts(self, chat_id: int, count: int = 3) -> str:
        return "\n".join(self.texts(chat_id)[-count:])

    def find_button(self, chat_id: int, label: str) -> tuple[dict, dict]:
        """The newest message to ``chat_id`` with a button whose label contains ``label``."""
        for message in reversed(self.fake.sent(chat_id)):
            markup = message.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if label in button["text"]:
                        return message, button
        raise AssertionError(f"no button {label!r} in chat {chat_id}:\n{self.fake.dump()}")

    # -- setting up the team ---------------------------------------------------------------------

    def make_team(self, name: str = "Sales East") -> int:
        with transaction(self.engine) as session:
            return create_team(session, name=name, now=NOW).id

    def add_member(self, team_id: int, user_id: int, name: str, role: str = "rep") -> int:
        with transaction(self.engine) as session:
            member = add_member(
                session,
                team_id=team_id,
                telegram_user_id=user_id,
                display_name=name,
                role=role,
                language="en",
                timezone="Asia/Shanghai",
                now=NOW,
            )
            return member.id

    def invite(self, team_id: int, role: str = "rep") -> str:
        with transaction(self.engine) as session:
            return create_invite(session, team_id=team_id, role=role, now=datetime.now(UTC))
