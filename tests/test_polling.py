"""The polling loop's batches: different people side by side, each person's updates in order."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler

from bot.tg.polling import handle_batch
from tests.fake_bot_api import FakeBotApi

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
