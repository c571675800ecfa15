"""The product's polling loop: different people side by side, each person's updates in order;
an update it cannot read, or another poller on the token, does not stop it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Engine
from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler

from bot.cli.app import build_app
from bot.cli.config import DatabaseSettings, Settings, TelegramSettings
from bot.tg.application import ALLOWED_UPDATES, build_application
from bot.tg.polling import handle_batch, serve
from flows.i18n import t
from tests.fake_bot_api import FakeBotApi
from tests.telegram_world import fast_limiter

ANN, BOB = 101, 202


def _message(update_id: int, user_id: int, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "U"},
            "text": text,
        },
    }


async def test_people_are_handled_side_by_side_and_each_in_order(fake: FakeBotApi) -> None:
    """Ann's first update waits until Bob's was handled; her second waits for her first."""
    application = ApplicationBuilder().token(fake.token).base_url(fake.base_url).build()
    bob_done = asyncio.Event()
    seen: list[str] = []

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        text = update.message.text
        if text == "ann 1":
            await asyncio.wait_for(bob_done.wait(), timeout=5)  # only if Bob runs meanwhile
        seen.append(text)
        if text == "bob 1":
            bob_done.set()

    application.add_handler(TypeHandler(Update, handle))
    raw = [_message(1, ANN, "ann 1"), _message(2, BOB, "bob 1"), _message(3, ANN, "ann 2")]
    updates = [Update.de_json(data, application.bot) for data in raw]

    async with application:
        await handle_batch(application, updates)

    assert seen == ["bob 1", "ann 1", "ann 2"]


async def test_a_groups_updates_keep_their_order_whoever_sent_them(fake: FakeBotApi) -> None:
    """A group's link to a team changes in order (a removal, a migration, a /setgroup)."""
    application = ApplicationBuilder().token(fake.token).base_url(fake.base_url).build()
    seen: list[str] = []

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message.text == "ann":
            await asyncio.sleep(0.05)  # Bob's update would overtake this if run beside it
        seen.append(update.message.text)

    application.add_handler(TypeHandler(Update, handle))
    raw = [_message(1, ANN, "ann"), _message(2, BOB, "bob")]
    for data in raw:
        data["message"]["chat"] = {"id": -100, "type": "group", "title": "Sales East"}
    updates = [Update.de_json(data, application.bot) for data in raw]

    async with application:
        await handle_batch(application, updates)

    assert seen == ["ann", "bob"]


STRANGER = 4242


def _stranger_says(fake: FakeBotApi, text: str) -> int:
    return fake.user_message(STRANGER, text)


@asynccontextmanager
async def serving(fake: FakeBotApi, engine: Engine) -> AsyncIterator[None]:
    """StageCoach on its own polling loop (bot/tg/polling.serve), as ``stagecoach run``."""
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(
        database=DatabaseSettings(url=url), telegram=TelegramSettings(base_url=fake.base_url)
    )
    app = build_app(settings)
    application = build_application(app, fake.token, rate_limiter=fast_limiter(), schedule=False)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, ALLOWED_UPDATES, stop))
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            app.engine.dispose()


def _unreadable_updates() -> list[dict]:
    presser = {"id": STRANGER, "is_bot": False, "first_name": "U", "language_code": "zh"}
    return [
        {"callback_query": {"id": "7", "from": presser, "data": "q:1:yes"}},  # no chat_instance
        {"message": {"message_id": 1, "chat": {"id": STRANGER, "type": "private"}}},  # no date
        {"message": "not an object"},
    ]


async def test_an_update_that_cannot_be_read_is_skipped_and_the_bot_serves_on(
    fake: FakeBotApi, engine: Engine, caplog
) -> None:
    bad_ids = [fake.add_update(update) for update in _unreadable_updates()]
    _stranger_says(fake, "hello")
    with caplog.at_level(logging.WARNING):
        async with serving(fake, engine):
            await fake.wait_for(lambda: fake.sent(STRANGER) and not fake.pending_updates, 10)
            bad_ids.append(fake.add_update({"edited_message": {"text": "hi"}}))
            _stranger_says(fake, "hello again")
            await fake.wait_for(lambda: len(fake.sent(STRANGER)) == 3, 10)
    skipped = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    kinds = ["KeyError", "KeyError", "TypeError", "KeyError"]
    assert skipped == [
        f"update {i} could not be read ({kind}); skipped"
        for i, kind in zip(bad_ids, kinds, strict=True)
    ]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not fake.pending_updates  # confirmed: Telegram will not send them again
    # The presser (known, in a private chat) hears that nothing was saved, in their language;
    # the updates without a sender or chat are skipped in silence.
    told = [m["text"] for m in fake.sent(STRANGER) if m["text"] == t("zh", "dialog.error")]
    assert len(told) == 1


async def test_another_poller_on_the_token_is_one_warning_not_a_traceback_each_time(
    fake: FakeBotApi, engine: Engine, caplog, monkeypatch
) -> None:
    monkeypatch.setattr("bot.tg.polling.RETRY_SECONDS", 0.01)
    fake.inject_error("getUpdates", 409, "Conflict: terminated by other getUpdates", count=5)
    with caplog.at_level(logging.WARNING):
        async with serving(fake, engine):
            _stranger_says(fake, "hello")
            await fake.wait_for(lambda: fake.sent(STRANGER), 10)
    conflicts = [r for r in caplog.records if "another process is polling" in r.getMessage()]
    assert len(conflicts) == 1 and conflicts[0].levelno == logging.WARNING
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("bot."))


async def test_a_failing_telegram_at_start_up_does_not_keep_the_bot_from_serving(
    fake: FakeBotApi, engine: Engine, monkeypatch, caplog
) -> None:
    """Issue 13: one 502 on setMyCommands ended ``stagecoach run``. getMe, the menus and the
    webhook's removal are retried or passed over; the bot serves meanwhile, and the menus
    are set once Telegram answers."""
    monkeypatch.setattr("bot.tg.lifecycle.RETRY_SECONDS", (0.05,))
    fake.inject_error("getMe", 502, "Bad Gateway", count=2)
    fake.inject_error("deleteWebhook", 500, "Internal Server Error")
    fake.inject_error("setMyCommands", 500, "Internal Server Error", count=3)
    _stranger_says(fake, "hello")
    with caplog.at_level(logging.WARNING):
        async with serving(fake, engine):
            await fake.wait_for(lambda: fake.sent(STRANGER), 10)
            await fake.wait_for(lambda: len(fake.calls("setMyCommands")) >= 3 + 6, 10)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("did not say who this bot is" in line for line in warned)
    assert any("could not remove a webhook" in line for line in warned)
    retried = [line for line in warned if "set its command menus" in line]
    assert len(retried) == 4  # a failed getMe (the other was the start's), 3 setMyCommands


async def test_a_get_me_answer_ptb_cannot_read_does_not_keep_the_bot_from_serving(
    fake: FakeBotApi, engine: Engine, monkeypatch, caplog
) -> None:
    """telegram-test-api (an npm emulator) answers getMe without ``is_bot``, which PTB
    requires: the start failed with a TypeError. It serves, and says it does not know its name."""
    monkeypatch.setattr("bot.tg.lifecycle.RETRY_SECONDS", (0.05,))

    async def get_me_without_is_bot(params):
        return {"id": 123456, "first_name": "Emulated", "username": "emulated_bot"}

    monkeypatch.setitem(fake._handlers, "getMe", get_me_without_is_bot)
    _stranger_says(fake, "hello")
    with caplog.at_level(logging.WARNING):
        async with serving(fake, engine):
            await fake.wait_for(lambda: fake.sent(STRANGER), 10)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Telegram did not say who this bot is (TypeError); starting anyway" in warned
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_get_me_that_times_out_does_not_keep_the_bot_from_serving(
    fake: FakeBotApi, engine: Engine, monkeypatch
) -> None:
    monkeypatch.setattr("bot.tg.lifecycle.RETRY_SECONDS", (0.05,))
    held = fake.hold("getMe")
    _stranger_says(fake, "hello")
    async with serving(fake, engine):
        await fake.wait_for(lambda: fake.sent(STRANGER), 15)  # after getMe's read timeout
        held.set()
        await fake.wait_for(lambda: fake.calls("setMyCommands"), 10)


async def test_a_rejected_token_stops_the_start_without_repeating_the_token(
    fake: FakeBotApi, engine: Engine
) -> None:
    """PTB's own InvalidToken quotes the token (issue 18: it reached the CLI's output)."""
    fake.inject_error("getMe", 401, "Unauthorized")
    with pytest.raises(InvalidToken) as caught:
        async with serving(fake, engine):
            pass
    assert fake.token not in str(caught.value) and "rejected the bot token" in str(caught.value)
