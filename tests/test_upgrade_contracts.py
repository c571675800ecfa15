"""What StageCoach assumes of its libraries beyond their documented API.

Each test names the fence module that relies on the assumption (bot/tg/fences.py,
storage/fences.py, or a public API used in a particular way) and fails with a message saying
what an upgrade changed, so the fix starts in the right place.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import warnings
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.util import await_only
from telegram import Bot, User
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, ExtBot
from telegram.request import BaseRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from bot.tg.fences import assume_bot_user, post_unparsed
from bot.tg.ratelimit import retry_after_seconds
from storage.fences import greenlet_spawn

ME = {"id": 1, "is_bot": True, "first_name": "Coach", "username": "coach_bot"}
SENT = {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "hi"}


class RecordingRequest(BaseRequest):
    """A transport that records each call and answers as Telegram would, without a network."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=BaseRequest.DEFAULT_NONE,
        write_timeout=BaseRequest.DEFAULT_NONE,
        connect_timeout=BaseRequest.DEFAULT_NONE,
        pool_timeout=BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        timeouts = [read_timeout, write_timeout, connect_timeout, pool_timeout]
        params = request_data.parameters if request_data else {}
        self.calls.append({"url": url, "params": params, "timeouts": timeouts})
        result = ME if url.endswith("/getMe") else SENT
        return 200, json.dumps({"ok": True, "result": result}).encode()


class CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.endpoints: list[str] = []

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        self.endpoints.append(endpoint)
        return await callback(*args, **kwargs)


async def test_ptb_post_is_the_path_of_every_send():
    """bot/tg/fences.post_unparsed calls ExtBot._post: the same request, defaults and rate
    limiter as send_message, minus turning the answer into objects."""
    assert inspect.iscoroutinefunction(getattr(ExtBot, "_post", None)), (
        "PTB no longer has ExtBot._post; bot/tg/fences.post_unparsed must find another way to "
        "send without parsing the answer (or call send_message and accept the parsing cost)"
    )
    request, limiter = RecordingRequest(), CountingLimiter()
    async with ExtBot("1:x", request=request, rate_limiter=limiter) as bot:
        parsed = await bot.send_message(5, "hi")
        raw = await post_unparsed(bot, "sendMessage", {"chat_id": 5, "text": "hi"})
    [*_, by_wrapper, by_fence] = request.calls
    assert by_fence["url"] == by_wrapper["url"] and by_fence["params"] == by_wrapper["params"], (
        "ExtBot._post no longer sends what send_message sends; see bot/tg/fences.py"
    )
    assert limiter.endpoints[-2:] == ["sendMessage", "sendMessage"], (
        "ExtBot._post no longer goes through the rate limiter; see bot/tg/fences.py"
    )
    assert parsed.message_id == 7 and raw == SENT, "ExtBot._post no longer returns raw JSON"


async def test_ptb_post_takes_a_read_timeout_for_long_polls():
    """bot/tg/fences.post_unparsed passes a long poll's read timeout to ExtBot._post."""
    request = RecordingRequest()
    async with ExtBot("1:x", request=request, get_updates_request=request) as bot:
        await post_unparsed(bot, "getUpdates", {"timeout": 10}, read_timeout=15.0)
    assert request.calls[-1]["timeouts"][0] == 15.0, (
        "ExtBot._post no longer passes read_timeout to the request; see bot/tg/fences.py"
    )


async def test_a_timeout_not_given_arrives_as_default_none():
    """bot/tg/transport.AiohttpRequest picks its own timeouts where PTB passes DEFAULT_NONE."""
    request = RecordingRequest()
    async with Bot("1:x", request=request) as bot:
        await bot.send_message(5, "hi")
        await bot.send_message(5, "hi", read_timeout=2.5)
    default, given = request.calls[-2]["timeouts"], request.calls[-1]["timeouts"]
    assert all(t is BaseRequest.DEFAULT_NONE for t in default), (
        f"PTB passed {default!r} for timeouts not given, not BaseRequest.DEFAULT_NONE; "
        "bot/tg/transport.py reads that sentinel"
    )
    assert given[0] == 2.5 and given[1] is BaseRequest.DEFAULT_NONE


@pytest.mark.parametrize("ptb_timedelta", ["true", "false"])
def test_retry_after_reads_as_seconds_either_way(monkeypatch, ptb_timedelta):
    """bot/tg/ratelimit.retry_after_seconds reads RetryAfter.retry_after, an int or (opted in
    with PTB_TIMEDELTA, and from PTB 23 on) a timedelta, without PTB's deprecation warning."""
    monkeypatch.setenv("PTB_TIMEDELTA", ptb_timedelta)
    with warnings.catch_warnings():  # PTB's own constructor reads retry_after too
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        errors = [RetryAfter(3), RetryAfter(timedelta(seconds=1.5))]
    assert [retry_after_seconds(error) for error in errors] == [3.0, 1.5]


async def test_greenlet_spawn_runs_sync_code_that_awaits():
    """storage/event_loop.LoopDatabase runs Session code through storage.fences.greenlet_spawn:
    inside it, SQLAlchemy's await_only turns the async driver's waits into awaits."""
    assert inspect.iscoroutinefunction(greenlet_spawn), "greenlet_spawn is no longer async"

    def sync_work(value: int) -> int:
        return await_only(asyncio.sleep(0, result=value)) + 1

    assert await greenlet_spawn(sync_work, 41) == 42, (
        "sqlalchemy.util.greenlet_spawn no longer runs sync code that awaits; see "
        "storage/fences.py and storage/event_loop.py"
    )


def test_a_bot_whose_get_me_failed_goes_by_an_assumed_user():
    """bot/tg/fences.assume_bot_user: Application.start reads ``bot.id``, which only a
    successful getMe sets (``Bot._bot_user``)."""
    bot = ExtBot("123:abc")
    with pytest.raises(RuntimeError):
        _ = bot.id
    assume_bot_user(bot, User(123, "", is_bot=True))
    assert bot.id == 123, "PTB no longer reads the bot's user from Bot._bot_user"
