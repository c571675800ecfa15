"""Ten thousand random and malformed updates (issue 13): no update can stop the bot.

Half go through the product's own polling loop, half through its webhook server. They mix
what members, strangers and groups send (commands with odd arguments, answers of every shape,
presses of real and forged buttons, edits, unknown update kinds) with what no Telegram sends
(fields missing, wrong types, integers past 64 bits, JSON that is not an update). Counted:
crashes (the loop or server ending), unhandled exceptions (an ERROR log line), and Bot API
rejections (an error answer from the fake, which refuses what Telegram refuses): zero each.
Seeded: a failure names its seed and is replayed with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine

from bot.cli.app import build_app
from bot.cli.config import DatabaseSettings, Settings, TelegramSettings
from bot.tg.application import ALLOWED_UPDATES, build_application
from bot.tg.lifecycle import running
from bot.tg.polling import serve
from bot.tg.webhook import SECRET_HEADER, WebhookServer
from storage.db import transaction
from storage.teams import add_member, create_team
from tests.dialog_driver import FIXED_NOW
from tests.fake_bot_api import FakeBotApi
from tests.intrusion import watch_rejections
from tests.telegram_world import fast_limiter
from tests.test_webhook import free_port

pytestmark = pytest.mark.full  # a fake Bot API: make test, not make check

UPDATES = 10_000
BATCH = 100  # updates given to the bot at once, then waited for
SEED = int(os.environ.get("FUZZ_SEED", "20261207"))  # another seed: FUZZ_SEED=n
UPDATES = int(os.environ.get("FUZZ_UPDATES", str(UPDATES)))
MEMBERS = (4001, 4002, 4003)
MANAGER = 4009
STRANGERS = (4101, 4102)
GROUP = -100777
SECRET = "fuzz-secret"

COMMANDS = [
    "/new", "/deals", "/gaps", "/help", "/skip", "/back", "/cancel", "/digest", "/invite",
    "/update 1", "/update 2 budget", "/update #1 @3", "/edit 1", "/advance 1", "/advance 1 7",
    "/advance 99", "/lost 1", "/pause 1", "/lang en", "/lang xx", "/tz UTC", "/tz Mars/Base",
    "/start", "/start not-a-code", "/setgroup", "/unsetgroup", "/nosuchcommand", "/new@OtherBot",
]  # fmt: skip
ANSWERS = [
    "Acme Bank", "大概300万", "80-100万", "2000多", "明年3月", "3月底", "春节后", "Q2", "yes",
    "no", "需要", "不清楚", "不知道", "王总 CIO 支持", "2027-03-01", "next Friday", "¥1", "¥-30",
    "1e400", "-0", "0", "9" * 40, "<b>bold</b> & <i>", "&amp;&lt;", "\u202eevil", "😀" * 50,
    " ", "\n\n", "a" * 4100, "\x00nul", "Government / Telecom", "1,000–9,999 employees",
]  # fmt: skip
FORGED_DATA = [
    "q:1:yes", "q:999:skip", "q:x:y", "a:1:1:2", "a:999:0:6", "e:1:@0", "e:1:nope", "f:1:1:2",
    "x:1:1:2", "r:1:1", "r:999:0", "n:1:7", "p:1", "l:zh", "l:xx", "", ":", "zz", "q::",
    "a:-1:-1:-1", "é" * 60,
]  # fmt: skip


def malformed(rng: random.Random, sender: int) -> Any:
    """An update no Telegram sends, or a body that is not one."""
    user = {"id": sender, "is_bot": False, "first_name": "M", "language_code": "en"}
    chat = {"id": sender, "type": "private"}
    message = {"message_id": rng.randint(1, 10**6), "date": 1795700000, "chat": chat, "from": user}
    shapes: list[Callable[[], Any]] = [
        lambda: {"message": {**message, "text": "/new", "date": None}},
        lambda: {"message": {k: v for k, v in message.items() if k != "date"} | {"text": "hi"}},
        lambda: {"message": {**message, "chat": "a chat"}},
        lambda: {"message": {**message, "from": {"id": "abc"}, "text": "x"}},
        lambda: {"message": {**message, "text": 12345}},
        lambda: {"message": {**message, "message_id": 2**70, "text": "x"}},
        lambda: {"message": {**message, "chat": {"id": 2**70, "type": "private"}}},
        lambda: {"callback_query": {"id": "1", "from": user, "data": "q:1:yes"}},
        lambda: {"callback_query": {"id": 7, "from": user, "chat_instance": "c", "data": None}},
        lambda: {"my_chat_member": {"chat": chat, "date": "yesterday"}},
        lambda: {"poll": {"id": "p", "question": "?"}},
        lambda: {"business_message": {"text": "hi"}},
        lambda: {"message": None},
        lambda: {"message": [1, 2, 3]},
        lambda: {"edited_message": {"text": "no chat"}},
        lambda: {"message": {**message, "entities": "bold", "text": "/x"}},
        lambda: {"message": {**message, "text": "x", "reply_to_message": {"junk": True}}},
    ]
    return rng.choice(shapes)()


class Fuzzer:
    """Makes the updates, consistently with what the fake knows (real chats, real messages
    under a pressed button), so that what the bot sends back is something Telegram takes."""

    def __init__(self, fake: FakeBotApi, rng: random.Random):
        self.fake = fake
        self.rng = rng
        self.typed: dict[int, list[int]] = {}  # user -> message ids they wrote
        self.malformed = 0

    def next_update(self) -> None:
        rng, fake = self.rng, self.fake
        roll = rng.random()
        person = rng.choice([*MEMBERS, MANAGER])
        if roll < 0.30:
            text = rng.choice(COMMANDS if rng.random() < 0.4 else ANSWERS)
            fake.user_message(person, text, language_code=rng.choice(["en", "zh"]))
            typed = fake.pending_updates[-1]["message"]["message_id"]
            self.typed.setdefault(person, []).append(typed)
            return
        if roll < 0.55:
            return self._press(person)
        if roll < 0.62:
            fake.user_message(rng.choice(STRANGERS), rng.choice(COMMANDS + ANSWERS))
            return
        if roll < 0.70:
            sender = rng.choice([*MEMBERS, MANAGER])
            fake.group_message(GROUP, sender, rng.choice(COMMANDS + ANSWERS))
            return
        if roll < 0.75 and self.typed.get(person):
            fake.edited_message(person, rng.choice(self.typed[person]), rng.choice(ANSWERS))
            return
        self.malformed += 1
        fake.add_update(malformed(rng, rng.choice([*MEMBERS, *STRANGERS])))

    def _press(self, person: int) -> None:
        with_buttons = [m for m in self.fake.sent(person) if m.get("reply_markup")]
        if not with_buttons:
            self.fake.user_message(person, self.rng.choice(COMMANDS))
            return
        message = self.rng.choice(with_buttons[-5:])
        rows = message["reply_markup"]["inline_keyboard"]
        real = [b["callback_data"] for row in rows for b in row if "callback_data" in b]
        data = self.rng.choice(real) if real and self.rng.random() < 0.7 else None
        data = data or self.rng.choice(FORGED_DATA) or "z"
        self.fake.callback(person, data, message["message_id"])


def seed_team(engine: Engine) -> None:
    with transaction(engine) as session:
        team = create_team(session, name="Fuzz", now=FIXED_NOW)
        for user, role in [*((m, "rep") for m in MEMBERS), (MANAGER, "manager")]:
            add_member(
                session,
                team_id=team.id,
                telegram_user_id=user,
                display_name=f"User {user}",
                role=role,
                language="en",
                timezone="Asia/Shanghai",
                now=FIXED_NOW,
            )


def build(fake: FakeBotApi, engine: Engine):
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(
        database=DatabaseSettings(url=url), telegram=TelegramSettings(base_url=fake.base_url)
    )
    app = build_app(settings)
    application = build_application(app, fake.token, rate_limiter=fast_limiter(), schedule=False)
    return app, application


async def caught_up(fake: FakeBotApi, application) -> None:
    adapter = application.bot_data["adapter"]
    await fake.wait_for(
        lambda: not fake.pending_updates and adapter.idle and fake.in_flight == 0, 60
    )


async def through_polling(fake: FakeBotApi, engine: Engine, fuzzer: Fuzzer, count: int) -> None:
    app, application = build(fake, engine)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(application, ALLOWED_UPDATES, stop))
    try:
        for _ in range(0, count, BATCH):
            for _ in range(BATCH):
                fuzzer.next_update()
            await caught_up(fake, application)
            assert not task.done(), "the polling loop ended"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)  # raises what ended it, if anything did
        app.engine.dispose()


async def through_webhook(fake: FakeBotApi, engine: Engine, fuzzer: Fuzzer, count: int) -> None:
    app, application = build(fake, engine)
    port = free_port()
    server = WebhookServer(application, listen="127.0.0.1", port=port, path="hook", secret=SECRET)
    url = f"http://127.0.0.1:{port}/hook"
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    async with running(application), aiohttp.ClientSession() as session:
        await server.start()
        try:
            for _ in range(0, count, BATCH):
                for _ in range(BATCH):
                    fuzzer.next_update()
                bodies = [json.dumps(u).encode() for u in fake.pending_updates]
                fake.pending_updates.clear()  # Telegram posts them instead of getUpdates
                bodies += [b"not json", b"[]", b'{"update_id": "x"}'] * (BATCH // 50)
                fuzzer.rng.shuffle(bodies)
                for body in bodies:
                    async with session.post(url, data=body, headers=headers) as response:
                        assert response.status in (200, 400), response.status
                await caught_up(fake, application)
        finally:
            await server.stop()
    app.engine.dispose()


async def test_ten_thousand_random_and_malformed_updates_stop_nothing(
    fake: FakeBotApi, sqlite_engine: Engine, caplog
) -> None:
    seed_team(sqlite_engine)
    fake.register_chat(GROUP, "group", "Fuzz group")
    for person in (*MEMBERS, MANAGER, *STRANGERS):
        fake.register_chat(person, "private", "User")
    rejections = watch_rejections(fake)
    fuzzer = Fuzzer(fake, random.Random(SEED))
    with caplog.at_level(logging.WARNING):
        await through_polling(fake, sqlite_engine, fuzzer, UPDATES // 2)
        await through_webhook(fake, sqlite_engine, fuzzer, UPDATES // 2)
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    sent = len([m for m in fake.requests if m[0] == "sendMessage"])
    # At the polling half's stop, the long poll it cancelled is ended by Telegram with a 409
    # when the confirming getUpdates comes: an answer nobody reads, not a refusal.
    refused = [r for r in rejections if not (r.method == "getUpdates" and r.status == 409)]
    print(
        f"fuzz (seed {SEED}): {UPDATES} updates, {fuzzer.malformed} malformed, "
        f"{sent} messages sent; errors {len(errors)}, rejections {len(refused)}"
    )
    assert errors == [], errors[:10]
    assert refused == [], refused[:10]
    assert fake.spec_violations == [], fake.spec_violations[:10]
