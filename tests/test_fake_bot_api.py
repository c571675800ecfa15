"""The fake Bot API server itself, mostly through a real PTB ``Bot`` / ``Application``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, RetryAfter
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.tg.webhook import WebhookServer
from tests.fake_bot_api import (
    BOT_ID,
    BOT_USERNAME,
    FakeBotApi,
    HtmlParseError,
    parse_html,
    validate_object,
)

USER = 42


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        yield bot


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"b{i}", callback_data=d)] for i, d in enumerate(data)]
    )


async def raw_call(fake: FakeBotApi, method: str, **kwargs: object) -> tuple[int, dict]:
    """One HTTP call without PTB, to see the wire format."""
    url = f"{fake.base_url}{fake.token}/{method}"
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as response:
        return response.status, await response.json()


# -- basics ---------------------------------------------------------------------------------


async def test_get_me(fake: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.can_join_groups) == (BOT_ID, BOT_USERNAME, True)
    assert fake.requests[0][0] == "getMe"


async def test_send_message_returns_a_full_message(fake: FakeBotApi, bot: Bot) -> None:
    first = await bot.send_message(USER, "Hi <b>there</b>", parse_mode=ParseMode.HTML)
    second = await bot.send_message(USER, "again", reply_markup=keyboard("x"))
    assert first.text == "Hi there"
    assert first.entities[0].type == "bold"
    assert (first.entities[0].offset, first.entities[0].length) == (3, 5)
    assert first.chat.type == "private" and first.from_user.id == BOT_ID
    assert second.message_id == first.message_id + 1
    assert second.reply_markup == keyboard("x")
    assert [m["text"] for m in fake.sent(USER)] == ["Hi there", "again"]
    assert fake.last_text(USER) == "again"
    for message in fake.sent():
        assert validate_object("Message", message) == []
    assert fake.spec_violations == []


async def test_wire_format_and_unknown_method(fake: FakeBotApi) -> None:
    status, body = await raw_call(fake, "sendMessage", json={"chat_id": USER, "text": "json"})
    assert (status, body["ok"], body["result"]["text"]) == (200, True, "json")
    status, body = await raw_call(fake, "SENDMESSAGE", data={"chat_id": str(USER), "text": "f"})
    assert (status, body["result"]["message_id"]) == (200, 2)  # names are case-insensitive
    status, body = await raw_call(fake, "sendTelepathy", json={})
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    status, body = await raw_call(fake, "answerCallbackQuery", json={})
    assert (status, body["description"]) == (
        400,
        'Bad Request: parameter "callback_query_id" is required',
    )


async def test_unknown_parameters_are_recorded(fake: FakeBotApi) -> None:
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": "a", "colour": "red"}]]}
    await raw_call(
        fake,
        "sendMessage",
        json={"chat_id": USER, "text": "x", "txet": "y", "reply_markup": markup},
    )
    assert any("unknown parameter 'txet'" in v for v in fake.spec_violations)
    assert any("'colour'" in v for v in fake.spec_violations)


# -- Telegram's checks ----------------------------------------------------------------------


async def test_text_length_counts_utf16_after_parsing(bot: Bot) -> None:
    await bot.send_message(USER, "x" * 4096)
    await bot.send_message(USER, "😀" * 2048)  # 2 UTF-16 units each
    await bot.send_message(USER, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    for text in ("x" * 4097, "😀" * 2048 + "x"):
        with pytest.raises(BadRequest, match="(?i)^message is too long$"):
            await bot.send_message(USER, text)
    with pytest.raises(BadRequest, match="(?i)^message text is empty$"):
        await bot.send_message(USER, "<b> </b>", parse_mode=ParseMode.HTML)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<x>y</x>", 'Unsupported start tag "x" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("AT&T", "at byte offset 2"),
        ("<b>a<i>b</b></i>", 'Unmatched end tag at byte offset 8, expected "</i>", found "</b>"'),
        ("é <b", "Unclosed start tag at byte offset 3"),  # offsets count UTF-8 bytes
    ],
)
async def test_bad_html_is_rejected(bot: Bot, html: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as parse_error:
        parse_html(html)
    assert error in str(parse_error.value)  # Telegram's wording and case
    # PTB re-cases the description, so compare without case here.
    with pytest.raises(BadRequest, match="(?i)^can't parse entities: ") as caught:
        await bot.send_message(USER, html, parse_mode=ParseMode.HTML)
    assert error.lower() in caught.value.message.lower()


async def test_good_html_is_accepted(bot: Bot) -> None:
    message = await bot.send_message(
        USER,
        'a &lt; b &amp;&#33; <a href="https://x.org/?a=1&b=2">link</a> <tg-spoiler>s</tg-spoiler>',
        parse_mode=ParseMode.HTML,
    )
    assert message.text == "a < b &! link s"
    assert [e.type for e in message.entities] == ["text_link", "spoiler"]
    assert message.entities[0].url == "https://x.org/?a=1&b=2"


@pytest.mark.parametrize(
    ("data", "ok"),
    [("x" * 64, True), ("x" * 65, False), ("价" * 21, True), ("价" * 22, False), ("", False)],
)
async def test_callback_data_is_limited_to_64_bytes(bot: Bot, data: str, ok: bool) -> None:
    markup = {"inline_keyboard": [[{"text": "b", "callback_data": data}]]}
    if ok:
        await bot.send_message(USER, "pick", reply_markup=markup)
    else:
        with pytest.raises(BadRequest, match="(?i)^button_data_invalid$"):
            await bot.send_message(USER, "pick", reply_markup=markup)


async def test_edits(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(USER, "v1", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match="(?i)^message to edit not found$"):
        await bot.edit_message_text("v2", chat_id=USER, message_id=sent.message_id + 5)
    with pytest.raises(BadRequest, match="(?i)^message is not modified: specified new"):
        await bot.edit_message_text(
            "v1", chat_id=USER, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    edited = await bot.edit_message_text("v1", chat_id=USER, message_id=sent.message_id)
    assert edited.reply_markup is None  # no reply_markup in an edit drops the keyboard
    await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard("b"))
    assert fake.sent(USER)[0]["reply_markup"] == keyboard("b").to_dict()
    assert fake.sent(USER)[0]["text"] == "v1" and "edit_date" in fake.sent(USER)[0]


async def test_chat_errors(fake: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)^chat not found$"):
        await bot.send_message(-100999, "hello?")
    fake.register_chat(-5, "group", "Sales")
    await bot.send_message(-5, "hello group")
    fake.migrate_group(-5, -1005)
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-5, "still there?")
    assert migrated.value.new_chat_id == -1005
    await bot.send_message(-1005, "hello supergroup")
    fake.bot_removed(-1005, by_user_id=USER)
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        await bot.send_message(-1005, "let me in")
    fake.bot_removed(USER, by_user_id=USER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_chat_action(USER, "typing")


async def test_callback_queries(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(USER, "choose", reply_markup=keyboard("yes"))
    update_id = fake.callback(USER, "yes", sent.message_id)
    (update,) = await bot.get_updates(offset=update_id)
    query = update.callback_query
    assert (query.data, query.message.message_id, query.from_user.id) == (
        "yes",
        sent.message_id,
        USER,
    )
    assert await bot.answer_callback_query(query.id, text="ok")
    with pytest.raises(BadRequest, match="(?i)^query is too old and response timeout expired"):
        await bot.answer_callback_query(query.id)
    assert fake.answered_callbacks == [{"callback_query_id": query.id, "text": "ok"}]


async def test_commands_are_kept_per_scope_and_language(fake: FakeBotApi, bot: Bot) -> None:
    await bot.set_my_commands([("start", "Start")])
    await bot.set_my_commands([("start", "Начать")], language_code="ru")
    assert [c.description for c in await bot.get_my_commands(language_code="ru")] == ["Начать"]
    assert fake.commands[("default", "")] == [{"command": "start", "description": "Start"}]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match="(?i)^bot_command_invalid$"):
        await bot.set_my_commands([("Start!", "bad")])


async def test_send_photo_upload(fake: FakeBotApi, bot: Bot) -> None:
    message = await bot.send_photo(
        USER, photo=b"\x89PNG fake bytes", caption="<i>chart</i>", parse_mode=ParseMode.HTML
    )
    file_id = message.photo[-1].file_id
    assert fake.files[file_id] == b"\x89PNG fake bytes"
    assert message.caption == "chart"
    again = await bot.send_photo(USER, photo=file_id)
    assert again.photo[-1].file_id == file_id
    assert fake.spec_violations == []


async def test_get_chat_and_member(fake: FakeBotApi, bot: Bot) -> None:
    fake.group_message(-7, USER, "hi all")
    fake.set_member_status(-7, USER, "administrator")
    chat = await bot.get_chat(-7)
    member = await bot.get_chat_member(-7, USER)
    assert (chat.type, member.status, member.can_delete_messages) == (
        "group",
        "administrator",
        True,
    )
    assert (await bot.get_chat_member(-7, BOT_ID)).status == "member"
    assert await bot.leave_chat(-7)
    with pytest.raises(Forbidden, match="bot is not a member of the group chat"):
        await bot.send_message(-7, "back")


# -- flood limits and injected errors -------------------------------------------------------


async def test_injected_429_is_a_retry_after(fake: FakeBotApi, bot: Bot) -> None:
    fake.fail_next("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "one")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    await bot.send_message(USER, "two")  # only once


async def test_flood_limits() -> None:
    now = [0.0]
    async with (
        FakeBotApi(clock=lambda: now[0]) as fake,
        Bot(fake.token, base_url=fake.base_url) as bot,
    ):
        for i in range(3):  # the burst
            await bot.send_message(USER, f"m{i}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(USER, "too fast")
        assert caught.value.retry_after == dtm.timedelta(seconds=1)
        await bot.send_message(USER + 1, "another chat is fine")
        now[0] += 1.0
        await bot.send_message(USER, "after a second")

        fake.register_chat(-9, "supergroup", "Team")
        for i in range(20):
            now[0] += 0.1
            await bot.send_message(-9, f"g{i}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(-9, "21st in a minute")
        assert caught.value.retry_after == dtm.timedelta(seconds=59)  # 1.1 + 60 - 3.0, rounded up


async def test_rate_limits_can_be_turned_off() -> None:
    async with (
        FakeBotApi(rate_limits=False) as fake,
        Bot(fake.token, base_url=fake.base_url) as bot,
    ):
        for i in range(40):
            await bot.send_message(USER, f"m{i}")
        assert len(fake.sent(USER)) == 40


# -- updates and webhooks -------------------------------------------------------------------


async def test_long_poll_returns_an_update_early_and_honours_offset(
    fake: FakeBotApi, bot: Bot
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for(lambda: fake.calls("getUpdates"))
    update_id = fake.user_message(USER, "/start", first_name="Bea")
    (update,) = await poll
    assert loop.time() - started < 2
    assert update.update_id == update_id
    assert update.message.text == "/start" and update.message.from_user.first_name == "Bea"
    assert update.message.entities[0].type == "bot_command"
    assert [u.update_id for u in await bot.get_updates()] == [update_id]  # not confirmed yet
    assert await bot.get_updates(offset=update_id + 1) == ()
    assert await bot.get_updates(timeout=0) == ()


async def test_get_updates_filters_and_limits(fake: FakeBotApi, bot: Bot) -> None:
    first = fake.user_message(USER, "a")
    fake.user_message(USER, "b")
    fake.user_message(USER, "c")
    assert [u.message.text for u in await bot.get_updates(limit=2)] == ["a", "b"]
    fake.channel_post(-1001, "news")
    updates = await bot.get_updates(offset=first, allowed_updates=["channel_post"])
    assert [u.channel_post.text for u in updates] == ["news"]


async def test_update_builders_match_the_spec_and_ptb(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(USER, "menu", reply_markup=keyboard("go"))
    hello = fake.user_message(USER, "hello")
    fake.edited_message(USER, sent.message_id + 1, "hello again")
    fake.callback(USER, "go", sent.message_id)
    fake.group_message(-11, USER, "in group")
    fake.migrate_group(-11, -10011)
    fake.bot_removed(-10011, by_user_id=USER)
    fake.channel_post(-1002, "post")
    status, body = await raw_call(fake, "getUpdates", json={"offset": hello})
    assert status == 200
    for raw in body["result"]:
        assert validate_object("Update", raw) == []
    updates = [Update.de_json(raw, bot) for raw in body["result"]]
    assert [u.edited_message.text for u in updates if u.edited_message] == ["hello again"]
    assert updates[2].callback_query.message.text == "menu"
    migrations = [u.message for u in updates if u.message and u.message.migrate_to_chat_id]
    assert migrations[0].chat.id == -11 and migrations[0].migrate_to_chat_id == -10011
    removed = next(u.my_chat_member for u in updates if u.my_chat_member)
    assert (removed.chat.id, removed.new_chat_member.status) == (-10011, "kicked")
    assert updates[-1].channel_post.chat.type == "channel"


async def test_answers_match_the_spec(fake: FakeBotApi) -> None:
    fake.group_message(-21, USER, "hi")
    fake.set_member_status(-21, USER, "creator")
    for method, params, type_name in [
        ("getMe", {}, "User"),
        ("getChat", {"chat_id": -21}, "ChatFullInfo"),
        ("getChatMember", {"chat_id": -21, "user_id": USER}, "ChatMember"),
        ("getChatMember", {"chat_id": -21, "user_id": 99}, "ChatMember"),
        ("getWebhookInfo", {}, "WebhookInfo"),
    ]:
        status, body = await raw_call(fake, method, json=params)
        assert status == 200, body
        assert validate_object(type_name, body["result"]) == [], method


async def test_a_second_long_poll_ends_the_first(fake: FakeBotApi, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for(lambda: fake.calls("getUpdates"))
    # PTB's getUpdates connection pool has one connection, so the second poll goes around it.
    assert await raw_call(fake, "getUpdates", json={"timeout": 0}) == (
        200,
        {"ok": True, "result": []},
    )
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first


async def test_wait_for_times_out_with_a_dump(fake: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(USER, "something else")
    with pytest.raises(AssertionError, match="(?s)not met within.*something else"):
        await fake.wait_for(lambda: fake.last_text(USER) == "never", timeout=0.05)


async def test_webhook_blocks_get_updates(fake: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)HTTPS URL must be provided"):
        await bot.set_webhook("http://example.com/hook")
    await bot.set_webhook("https://example.com/hook", secret_token="s3cret")
    assert fake.webhook is not None and fake.webhook["secret_token"] == "s3cret"
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates() == ()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}")


def echo_app(fake: FakeBotApi) -> Application:
    app = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


async def test_application_echoes_over_polling(fake: FakeBotApi) -> None:
    app = echo_app(fake)
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        fake.user_message(USER, "hello")
        fake.group_message(-3, USER + 1, "hi group")
        await fake.wait_for(lambda: fake.last_text(USER) == "echo: hello")
        await fake.wait_for(lambda: fake.last_text(-3) == "echo: hi group")
        assert await fake.wait_until_idle()
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert fake.spec_violations == []


async def test_application_echoes_over_webhook(fake: FakeBotApi) -> None:
    app = echo_app(fake)
    port = free_port()
    await app.initialize()
    await app.start()
    server = WebhookServer(app, listen="127.0.0.1", port=port, path="hook", secret="s3cret")
    await server.start()
    await app.bot.set_webhook("https://example.com/hook", secret_token="s3cret")
    try:
        assert fake.webhook is not None and fake.webhook["url"] == "https://example.com/hook"
        update = {
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ann"},
                "text": "via hook",
            }
        }
        local = f"http://127.0.0.1:{port}/hook"
        assert await fake.post_webhook(local, update, secret_token="wrong") == 403
        assert await fake.post_webhook(local, update, secret_token="s3cret") == 200
        await fake.wait_for(lambda: fake.last_text(USER) == "echo: via hook")
    finally:
        await server.stop()
        await app.stop()
        await app.shutdown()
    assert fake.spec_violations == []
