"""TelegramRateLimiter at unit level: fast configured rates, real (short) waits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from telegram.error import BadRequest, RetryAfter

from bot.tg.ratelimit import TelegramRateLimiter, chat_key, counts_against_limits

SLACK = 0.03  # scheduling jitter we tolerate, in seconds


class Recorder:
    """A fake Bot API call: records when it ran (relative to creation) and for which chat."""

    def __init__(self, fail_with: list[Exception] | None = None) -> None:
        self.start = time.monotonic()
        self.calls: list[tuple[float, object]] = []
        self.fail_with = list(fail_with or [])

    async def __call__(self, chat: object = None) -> dict[str, object]:
        self.calls.append((time.monotonic() - self.start, chat))
        if self.fail_with:
            raise self.fail_with.pop(0)
        return {"ok": chat}

    def times(self, chat: object = None) -> list[float]:
        return [t for t, c in self.calls if chat is None or c == chat]


def send(
    limiter: TelegramRateLimiter,
    recorder: Recorder,
    chat_id: object = 5,
    endpoint: str = "sendMessage",
    rate_limit_args: int | None = None,
):
    data = {"text": "x"} if chat_id is None else {"chat_id": chat_id, "text": "x"}
    return limiter.process_request(
        callback=recorder,
        args=(),
        kwargs={"chat": chat_id},
        endpoint=endpoint,
        data=data,
        rate_limit_args=rate_limit_args,
    )


@pytest.fixture
async def make_limiter() -> AsyncIterator:
    made: list[TelegramRateLimiter] = []

    async def make(**kwargs: float) -> TelegramRateLimiter:
        limiter = TelegramRateLimiter(**kwargs)
        await limiter.initialize()
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.shutdown()


def test_endpoint_and_chat_classification() -> None:
    for endpoint in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText",
                     "editMessageReplyMarkup", "copyMessage", "forwardMessages"):  # fmt: skip
        assert counts_against_limits(endpoint), endpoint
    for endpoint in ("sendChatAction", "getUpdates", "getMe", "answerCallbackQuery",
                     "setMyCommands", "setWebhook", "deleteMessage"):  # fmt: skip
        assert not counts_against_limits(endpoint), endpoint
    assert chat_key(5) == chat_key("5") == 5
    assert chat_key("@channel") == "@channel"
    assert chat_key(None) is None


async def test_private_chat_burst_then_steady_rate(make_limiter) -> None:
    limiter = await make_limiter(private_burst=3, private_per_second=20)
    rec = Recorder()
    results = await asyncio.gather(*(send(limiter, rec) for _ in range(6)))
    assert results == [{"ok": 5}] * 6
    times = rec.times()
    assert max(times[:3]) < SLACK  # the burst goes out at once
    gaps = [b - a for a, b in zip(times[2:], times[3:], strict=False)]
    assert all(gap >= 0.05 - 0.01 for gap in gaps), gaps  # then 1 per 1/20 s
    assert times[-1] >= 0.15 - 0.01


async def test_private_chats_do_not_wait_for_each_other(make_limiter) -> None:
    limiter = await make_limiter(private_burst=1, private_per_second=10)
    rec = Recorder()
    await asyncio.gather(*(send(limiter, rec, chat_id=1) for _ in range(3)), send(limiter, rec, 2))
    assert rec.times(1)[-1] >= 0.2 - 0.01  # chat 1 is throttled at 1 per 0.1 s ...
    assert rec.times(2)[0] < SLACK  # ... while chat 2 goes straight out


@pytest.mark.parametrize("group", [-100123, "-100123", "@channel"])
async def test_group_limited_per_period(make_limiter, group: object) -> None:
    # "20 per minute" squeezed to 5 per 0.25 s: 5 at once, then one per 0.05 s.
    limiter = await make_limiter(group_per_minute=5, group_period=0.25)
    rec = Recorder()
    await asyncio.gather(*(send(limiter, rec, chat_id=group) for _ in range(7)))
    times = rec.times()
    assert max(times[:5]) < SLACK
    assert times[5] >= 0.05 - 0.01
    assert times[-1] >= 0.1 - 0.01


async def test_overall_limit_caps_all_chats(make_limiter) -> None:
    limiter = await make_limiter(overall_per_second=20)
    rec = Recorder()
    await asyncio.gather(*(send(limiter, rec, chat_id=n) for n in range(1, 25)))
    times = sorted(rec.times())
    assert max(times[:20]) < SLACK
    assert times[-1] >= 0.2 - 0.01  # 4 more at 20/s


async def test_the_overall_limit_holds_in_any_sliding_second(make_limiter) -> None:
    """Issue 18: a leaky bucket let its burst and then its drip through within one second
    (50 answered 429 in one run)."""
    limiter = await make_limiter(overall_per_second=40)
    rec = Recorder()
    await asyncio.gather(*(send(limiter, rec, chat_id=n) for n in range(1, 101)))
    times = sorted(rec.times())
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= 40
    assert times[-1] >= 2.0  # 100 at 40 a second: the last ones in the third second


async def test_retry_after_is_waited_out_and_retried(make_limiter, caplog) -> None:
    limiter = await make_limiter()
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.2)])
    with caplog.at_level(logging.WARNING, logger="bot.tg.ratelimit"):
        assert await send(limiter, rec, chat_id=7) == {"ok": 7}
    first, second = rec.times()
    assert second - first >= 0.2
    assert "sendMessage" in caplog.text and "chat 7" in caplog.text and "0.30 s" in caplog.text


async def test_retry_after_pauses_only_its_chat(make_limiter) -> None:
    limiter = await make_limiter()
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.1)])
    retried = asyncio.create_task(send(limiter, rec, chat_id=1))
    await asyncio.sleep(0.02)  # chat 1 is now paused
    await asyncio.gather(send(limiter, rec, chat_id=1), send(limiter, rec, chat_id=2))
    assert rec.times(2)[0] < 0.02 + SLACK
    assert min(rec.times(1)[1:]) >= 0.1
    await retried


async def test_retry_after_without_chat_pauses_everything(make_limiter) -> None:
    limiter = await make_limiter()
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.1)])
    retried = asyncio.create_task(send(limiter, rec, chat_id=None, endpoint="editMessageText"))
    await asyncio.sleep(0.02)
    await send(limiter, rec, chat_id=2)
    assert rec.times(2)[0] >= 0.1
    await retried


async def test_retry_after_beyond_max_retries_reraises(make_limiter, caplog) -> None:
    limiter = await make_limiter(max_retries=2)
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.01) for _ in range(3)])
    with caplog.at_level(logging.WARNING, logger="bot.tg.ratelimit"), pytest.raises(RetryAfter):
        await send(limiter, rec)
    assert len(rec.calls) == 3
    assert "giving up after 2 retries" in caplog.text


async def test_rate_limit_args_overrides_max_retries(make_limiter) -> None:
    limiter = await make_limiter(max_retries=0)
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.01)])
    assert await send(limiter, rec, rate_limit_args=1) == {"ok": 5}


async def test_non_message_endpoints_pass_straight_through(make_limiter) -> None:
    limiter = await make_limiter(private_burst=1, private_per_second=1, overall_per_second=1)
    rec = Recorder()
    await send(limiter, rec)  # uses up both buckets
    for endpoint in ("sendChatAction", "answerCallbackQuery", "getMe", "setMyCommands"):
        await send(limiter, rec, endpoint=endpoint)
    assert max(rec.times()) < SLACK
    rec = Recorder(fail_with=[RetryAfter(retry_after=0.01)])
    with pytest.raises(RetryAfter):  # not retried either
        await send(limiter, rec, endpoint="getMe")


async def test_other_exceptions_propagate_untouched(make_limiter) -> None:
    limiter = await make_limiter()
    error = BadRequest("Chat not found")
    rec = Recorder(fail_with=[error])
    with pytest.raises(BadRequest) as raised:
        await send(limiter, rec)
    assert raised.value is error
    assert len(rec.calls) == 1


async def test_idle_chats_are_dropped(make_limiter) -> None:
    limiter = await make_limiter(private_burst=1, private_per_second=50, max_chats=4)
    rec = Recorder()
    for chat in range(1, 5):
        await send(limiter, rec, chat_id=chat)
    await asyncio.sleep(0.05)  # all four buckets drain
    await send(limiter, rec, chat_id=99)
    assert list(limiter._chats) == [99]


async def test_at_most_max_in_flight_requests_at_once() -> None:
    limiter = TelegramRateLimiter(private_burst=100, private_per_second=100, max_in_flight=3)
    await limiter.initialize()
    release = asyncio.Event()
    running = 0
    most = 0

    async def slow(**_: object) -> dict[str, object]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return {}

    def request(endpoint: str, chat_id: int):
        data = {"chat_id": chat_id}
        return limiter.process_request(slow, (), {}, endpoint, data, None)

    endpoints = ("sendMessage", "answerCallbackQuery", "editMessageText") * 4
    tasks = [asyncio.create_task(request(e, n)) for n, e in enumerate(endpoints, 1)]
    await asyncio.sleep(0.05)
    assert most == 3  # the others queue in the limiter, not in the HTTP pool
    release.set()
    await asyncio.gather(*tasks)
    assert most == 3 and running == 0


async def test_a_request_waiting_for_a_slot_respects_a_pause_that_came_in_meanwhile() -> None:
    limiter = TelegramRateLimiter(private_burst=100, private_per_second=100, max_in_flight=1)
    await limiter.initialize()
    release = asyncio.Event()
    sent: dict[str, float] = {}
    calls = 0
    start = time.monotonic()

    async def post(name: str) -> dict[str, object]:
        nonlocal calls
        calls += 1
        if name == "first" and calls == 1:
            await release.wait()  # holds the only slot while "second" queues for it
            sent["429"] = time.monotonic() - start
            raise RetryAfter(retry_after=0.3)
        sent.setdefault(name, time.monotonic() - start)
        return {}

    def request(name: str):
        return limiter.process_request(post, (name,), {}, "sendMessage", {"chat_id": 5}, None)

    first = asyncio.create_task(request("first"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(request("second"))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(first, second)
    assert sent["second"] >= sent["429"] + 0.3 - SLACK  # not straight into the pause
