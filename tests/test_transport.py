"""The aiohttp transport: what PTB's BaseRequest contract asks of it, over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import NetworkError, TimedOut

from bot.tg.coach_bot import CoachBot
from bot.tg.transport import READ_SECONDS, AiohttpRequest, NoAnswer, NotSent

ME = {"id": 1, "is_bot": True, "first_name": "Coach", "username": "coach_bot"}


@pytest.fixture
async def server():
    """A loopback server whose handler the test sets; it records what it was sent."""
    seen: list[dict] = []
    state = {"delay": 0.0}

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: (v.file.read() if hasattr(v, "file") else v) for k, v in form.items()}
        seen.append({"path": request.path, "type": request.content_type, "fields": fields})
        await asyncio.sleep(state["delay"])
        result = ME if request.path.endswith("/getMe") else True
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen, state
    await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_form_fields_go_urlencoded(server):
    url, seen, _ = server
    async with Bot("1:x", base_url=f"{url}/bot", request=AiohttpRequest()) as bot:
        assert await bot.do_api_request("custom_method", {"chat_id": 5, "text": "<b>hi</b>"})
    assert seen[-1]["type"] == "application/x-www-form-urlencoded"
    assert seen[-1]["path"] == "/bot1:x/customMethod"
    assert seen[-1]["fields"] == {"chat_id": "5", "text": "<b>hi</b>"}


async def test_files_go_multipart_with_the_other_fields(server):
    url, seen, _ = server
    picture = InputFile(b"\x89PNG fake bytes", filename="funnel.png")
    async with Bot("1:x", base_url=f"{url}/bot", request=AiohttpRequest()) as bot:
        await bot.do_api_request("custom_upload", {"chat_id": 5, "photo": picture})
    sent = seen[-1]
    assert sent["type"] == "multipart/form-data"
    assert sent["fields"]["chat_id"] == "5"
    assert b"\x89PNG fake bytes" in sent["fields"].values()


async def test_a_slow_answer_is_a_ptb_timeout_that_may_have_been_carried_out(server):
    url, _, state = server
    state["delay"] = 1.0
    request = AiohttpRequest(read_timeout=0.1)
    await request.initialize()
    try:
        with pytest.raises(NoAnswer) as raised:
            await request.post(f"{url}/bot1:x/getMe")
        assert isinstance(raised.value, TimedOut)
    finally:
        await request.shutdown()


async def test_a_refused_connection_is_a_ptb_network_error_that_was_not_sent():
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NotSent) as raised:
            await request.post(f"http://127.0.0.1:{_free_port()}/bot1:x/getMe")
        assert isinstance(raised.value, NetworkError)
        assert not isinstance(raised.value, TimedOut)
    finally:
        await request.shutdown()


async def test_use_before_initialize_is_refused_and_shutdown_is_idempotent():
    request = AiohttpRequest()
    with pytest.raises(NetworkError, match="not initialized"):  # PTB wraps it
        await request.post("http://127.0.0.1:1/bot1:x/getMe")
    await request.initialize()
    await request.shutdown()
    await request.shutdown()
    assert request.read_timeout == READ_SECONDS


async def test_a_proxy_from_the_environment_is_used_unless_the_host_is_excluded(
    server, monkeypatch
):
    url, seen, _ = server
    proxy_port = _free_port()  # nothing listens there: going through it must fail
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy_port}")
    monkeypatch.setenv("no_proxy", "")
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.post(f"{url}/bot1:x/getMe")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        direct = AiohttpRequest()
        await direct.initialize()
        try:
            assert await direct.post(f"{url}/bot1:x/getMe") == ME
        finally:
            await direct.shutdown()
    finally:
        await request.shutdown()
    assert len(seen) == 1  # only the direct request reached the server


async def test_a_proxy_aiohttp_cannot_speak_is_reported_once_and_not_used(
    server, monkeypatch, caplog
):
    url, seen, _ = server
    monkeypatch.setenv("all_proxy", "socks5://user:pw@127.0.0.1:1080")
    monkeypatch.setenv("no_proxy", "")
    request = AiohttpRequest()
    await request.initialize()
    try:
        for _ in range(2):
            assert await request.post(f"{url}/bot1:x/getMe") == ME
    finally:
        await request.shutdown()
    complaints = [r for r in caplog.records if "only http:// proxies" in r.getMessage()]
    assert len(complaints) == 1 and "pw" not in complaints[0].getMessage()
    assert len(seen) == 2


async def test_an_unparsed_call_sends_objects_as_json_and_returns_the_answer_as_it_came(server):
    url, seen, _ = server
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="a:1")]])
    async with CoachBot("1:x", base_url=f"{url}/bot", request=AiohttpRequest()) as bot:
        answer = await bot.post_unparsed(
            "sendMessage", chat_id=5, text="hi", reply_markup=markup, reply_to_message_id=None
        )
        me = await bot.post_unparsed("getMe")
    assert answer is True
    assert me == ME  # a dict, not a telegram.User
    fields = seen[-2]["fields"]
    assert seen[-2]["path"] == "/bot1:x/sendMessage"
    assert json.loads(fields.pop("reply_markup")) == markup.to_dict()
    assert fields == {"chat_id": "5", "text": "hi"}  # None values are left out, as PTB does
