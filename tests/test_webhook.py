"""Webhook mode (bot/tg/webhook.py): the answer after the commit, the secret before the body,
and no body that can hurt the bot."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest
from sqlmodel import select

from bot.tg.webhook import MAX_BODY_BYTES, SECRET_HEADER
from flows.i18n import t
from storage.db import transaction
from storage.models import Deal, ProcessedUpdate
from tests.fake_bot_api import FakeBotApi
from tests.telegram_world import TelegramWorld

pytestmark = pytest.mark.full  # a fake Bot API: make test, not make check

ANN = 1001
SECRET = "s3cret-token"


def private_update(update_id: int, user_id: int, text: str) -> dict:
    """A message update as Telegram posts it to a webhook."""
    chat = {"id": user_id, "type": "private", "first_name": "Ann"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1795700000,
            "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": "en"},
            "text": text,
            **(
                {"entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}
                if text.startswith("/")
                else {}
            ),
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def post_raw(url: str, body: bytes, secret: str | None = SECRET) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


@pytest.fixture
async def webhook_world(fake, engine):
    port = free_port()
    world = TelegramWorld(fake, engine, limiter=None)
    await world.start(webhook_port=port, secret=SECRET)
    team = world.make_team()
    world.add_member(team, ANN, "Ann")
    world.url = f"http://127.0.0.1:{port}/hook"
    yield world
    await world.stop()


def handled(world: TelegramWorld) -> set[int]:
    with transaction(world.engine) as session:
        return set(session.exec(select(ProcessedUpdate.update_id)).all())


async def test_webhook_mode_checks_the_secret_token(webhook_world, fake: FakeBotApi, caplog):
    world = webhook_world
    assert fake.webhook["url"] == "https://example.com/hook"
    assert fake.webhook["secret_token"] == SECRET
    for secret in (None, "wrong", SECRET + "x"):
        status = await fake.post_webhook(world.url, private_update(1, ANN, "/new"), secret)
        assert status == 403
    await world.settle()
    assert world.texts(ANN) == [] and handled(world) == set()
    status = await fake.post_webhook(world.url, private_update(2, ANN, "/new"), SECRET)
    assert status == 200
    await world.settle()
    assert world.texts(ANN) == [t("en", "dialog.ask_customer")]
    assert SECRET not in caplog.text


async def test_the_answer_goes_out_only_once_the_turn_committed(webhook_world, fake: FakeBotApi):
    """Issue 13: PTB's server answered 200 before the turn ran, so a crash lost the update.
    Telegram's retry of an unanswered POST is what makes a crash harmless."""
    world = webhook_world
    for update_id, text in enumerate(("/new", "Acme Bank", "Training 2027", "/deals"), 100):
        assert (
            await fake.post_webhook(world.url, private_update(update_id, ANN, text), SECRET) == 200
        )
        assert update_id in handled(world)  # no settle: the 200 came after the commit
    await world.settle()
    assert any("Created #1" in text for text in world.texts(ANN))


async def test_a_redelivered_update_takes_effect_once(webhook_world, fake: FakeBotApi):
    world = webhook_world
    for update in (
        private_update(10, ANN, "/new"),
        private_update(11, ANN, "Acme Bank"),
        private_update(12, ANN, "Training 2027"),
        private_update(12, ANN, "Training 2027"),  # Telegram retries a webhook delivery
    ):
        assert await fake.post_webhook(world.url, update, SECRET) == 200
        await world.settle()
    with transaction(world.engine) as session:
        deals = session.exec(select(Deal)).all()
    assert len(deals) == 1
    assert sum("Created #1" in text for text in world.texts(ANN)) == 1


NOT_UPDATES = [
    b"not json",
    b"\xff\xfe\x00",
    b"[]",
    b'"an update"',
    b"{}",
    b'{"update_id": "7"}',
    b'{"update_id": true}',
    b"[" * 100_000,  # deeper than the JSON reader goes
]


async def test_bodies_that_are_not_updates_get_400_and_one_line_each(
    webhook_world, fake: FakeBotApi, caplog
):
    world = webhook_world
    with caplog.at_level(logging.WARNING):
        statuses = [await post_raw(world.url, body) for body in NOT_UPDATES]
    assert statuses == [400] * len(NOT_UPDATES)
    refused = [r for r in caplog.records if "webhook body" in r.getMessage()]
    assert len(refused) == len(NOT_UPDATES)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    await fake.post_webhook(world.url, private_update(5, ANN, "/new"), SECRET)
    await world.settle()
    assert world.texts(ANN) == [t("en", "dialog.ask_customer")]  # serving on


async def test_updates_that_cannot_be_read_are_skipped_and_the_sender_told(
    webhook_world, fake: FakeBotApi, caplog
):
    """As in polling: answered 200 (Telegram would send them again at every attempt), logged
    with their id, and a rep in a private chat hears that nothing was saved."""
    world = webhook_world
    no_date = private_update(20, ANN, "hello")
    del no_date["message"]["date"]
    huge = private_update(21, ANN, "/new")
    huge["message"]["chat"]["id"] = huge["message"]["from"]["id"] = 2**70
    button_without_chat_instance = {
        "update_id": 22,
        "callback_query": {
            "id": "7",
            "from": {"id": ANN, "is_bot": False, "first_name": "A", "language_code": "en"},
        },
    }
    with caplog.at_level(logging.WARNING):
        for update in (no_date, huge, button_without_chat_instance):
            assert await fake.post_webhook(world.url, update, SECRET) == 200
        await world.settle()
    skipped = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert [line.split()[1] for line in skipped] == ["20", "21", "22"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert world.texts(ANN) == [t("en", "dialog.error")] * 2  # the message and the press
    assert handled(world) == set()


async def test_a_body_over_the_limit_is_refused_and_the_bot_serves_on(
    webhook_world, fake: FakeBotApi
):
    world = webhook_world
    padding = "x" * (MAX_BODY_BYTES + 1)
    body = f'{{"update_id": 30, "padding": "{padding}"}}'.encode()
    assert await post_raw(world.url, body) == 413
    assert await post_raw(world.url, body, secret="wrong") == 403
    assert await fake.post_webhook(world.url, private_update(31, ANN, "/new"), SECRET) == 200
    await world.settle()
    assert world.texts(ANN) == [t("en", "dialog.ask_customer")]
