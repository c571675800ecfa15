"""A PTB rate limiter that follows Telegram's flood limits and waits out 429s.

Pass an instance to ``ApplicationBuilder().rate_limiter(...)``.

Limits (Telegram Bot FAQ, "My bot is hitting limits, how do I avoid this?"):

* private chat (positive chat id): about 1 message/s, after a burst of ``private_burst``
  so a 2-3 message reply goes out at once;
* group, supergroup or channel (negative id or ``"@name"``): ``group_per_minute`` per minute;
* the whole bot: ``overall_per_second`` messages in any sliding second (a leaky bucket would
  let a full burst and then its drip through within one second: twice the limit).

What counts: only endpoints that put a message into a chat -- ``send*`` (not
``sendChatAction``: it shows "typing..." and makes no message), ``copyMessage(s)``,
``forwardMessage(s)`` and ``editMessage*``. ``sendMediaGroup`` counts as one. Everything else
(getUpdates, getMe, answerCallbackQuery, setMyCommands, setWebhook, deleteMessage, ...) is not
throttled, paused or retried. Every request waits for one of ``max_in_flight`` slots: at most
that many are in flight at once (the HTTP pool has as many connections). getUpdates never comes
here: PTB's ExtBot sends it around the limiter, on its own connection.

Retry rule: on ``RetryAfter`` we sleep ``retry_after`` + 0.1 s and retry, at most ``max_retries``
times (``rate_limit_args`` overrides it per call), then re-raise. If the request had a
``chat_id`` only that chat pauses (other chats keep sending); without one (e.g. editing an
inline message) the 429 can only concern the bot as a whole, so all counted requests pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # Bot API requests at once (the bot's HTTP connection pool has as many)
# Run 2% under the limits: asyncio timers may fire a little early and Telegram's clock is not
# ours, so a limiter running flat out at exactly the limit grazes it now and then (a 429).
LIMIT_MARGIN = 1.02
RETRY_MARGIN = 0.1  # seconds added to retry_after, so we don't retry a hair too early
_MESSAGE_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage")
_FREE_ENDPOINTS = frozenset({"sendChatAction"})

Result = bool | dict[str, Any] | list[dict[str, Any]]


def retry_after_seconds(exc: RetryAfter) -> float:
    """How long a 429 asks us to wait, in seconds.

    ``retry_after`` is an int until PTB 23 (with a deprecation warning) and a timedelta with
    ``PTB_TIMEDELTA=true`` or after; both are read without the warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def counts_against_limits(endpoint: str) -> bool:
    """Whether ``endpoint`` sends or edits a message, i.e. is subject to flood limits."""
    return endpoint.startswith(_MESSAGE_PREFIXES) and endpoint not in _FREE_ENDPOINTS


def chat_key(chat_id: object) -> int | str | None:
    """``chat_id`` as an int where possible ("123" and 123 are the same chat), else a string."""
    if chat_id is None:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return int(chat_id)  # type: ignore[call-overload]
    return str(chat_id)


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``period`` seconds, granted in arrival order."""

    def __init__(self, limit: int, period: float) -> None:
        self._limit = max(1, limit)
        self._period = period
        self._granted: deque[float] = deque()  # loop times of the last ``limit`` grants
        self._queue = asyncio.Lock()  # FIFO: waiters are served in the order they came

    async def acquire(self) -> None:
        async with self._queue:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                while self._granted and self._granted[0] <= now - self._period:
                    self._granted.popleft()  # out of the window (keeps it short for any limit)
                if len(self._granted) < self._limit:
                    break
                await asyncio.sleep(self._granted[0] + self._period - now)
            self._granted.append(now)


@dataclass(slots=True)
class _Chat:
    limiter: AsyncLimiter
    paused_until: float = 0.0  # event-loop time until which a 429 told this chat to wait


class TelegramRateLimiter(BaseRateLimiter[int]):
    """Per-chat and overall throttling plus per-chat 429 handling; see the module docstring."""

    def __init__(
        self,
        *,
        private_burst: int = 3,
        private_per_second: float = 1.0,
        group_per_minute: int = 20,
        group_period: float = 60.0,
        overall_per_second: float = 30.0,
        max_retries: int = 5,
        max_chats: int = 1024,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        # A leaky bucket of size `burst` draining at `rate` allows `burst` at once, then `rate`.
        self._private_bucket = (private_burst, private_burst / private_per_second * LIMIT_MARGIN)
        # `group_period` is only there so tests can squeeze "a minute" into a fraction of a second.
        self._group_bucket = (group_per_minute, group_period * LIMIT_MARGIN)
        self._overall_per_second = overall_per_second
        self._max_retries = max_retries
        self._max_chats = max_chats
        self._max_in_flight = max_in_flight
        self._reset()

    def _reset(self) -> None:
        # AsyncLimiter binds to the loop it is first used on, so start fresh on every (re)start.
        self._overall = SlidingWindow(int(self._overall_per_second), LIMIT_MARGIN)
        self._chats: OrderedDict[int | str, _Chat] = OrderedDict()
        self._paused_until = 0.0  # global pause, from a 429 on a request without chat_id
        # Hundreds of background deliveries queue here, not in the HTTP client's pool (it has
        # as many connections): a client's own queue can cost CPU on every request (httpx,
        # PTB's default, rescans its queue on each one).
        self._in_flight = asyncio.Semaphore(self._max_in_flight)

    @property
    def max_in_flight(self) -> int:
        """How many requests may be in flight at once (size the HTTP pool to match)."""
        return self._max_in_flight

    async def initialize(self) -> None:
        self._reset()

    async def shutdown(self) -> None:
        self._reset()

    def _chat(self, key: int | str) -> _Chat:
        chat = self._chats.get(key)
        if chat is None:
            if len(self._chats) >= self._max_chats:
                self._drop_idle()
            private = isinstance(key, int) and key > 0
            max_rate, period = self._private_bucket if private else self._group_bucket
            chat = self._chats[key] = _Chat(AsyncLimiter(max_rate, period))
        self._chats.move_to_end(key)
        return chat

    def _drop_idle(self) -> None:
        # A chat whose bucket is empty and that is not paused holds no information: forgetting
        # it is harmless. Busy chats stay, so the dict is bounded by how many chats can be
        # active at once under the overall limit.
        now = asyncio.get_running_loop().time()
        for key, chat in list(self._chats.items()):
            if chat.paused_until <= now and chat.limiter.has_capacity(chat.limiter.max_rate):
                del self._chats[key]

    def _pause_left(self, chat: _Chat | None) -> float:
        until = max(self._paused_until, chat.paused_until if chat else 0.0)
        return until - asyncio.get_running_loop().time()

    async def _throttle(self, chat: _Chat | None) -> None:
        while True:
            while (left := self._pause_left(chat)) > 0:
                await asyncio.sleep(left)
            if chat is None:
                break
            await chat.limiter.acquire()
            # A 429 may have come in while we queued; then queue again after the pause, or
            # everything that queued during the pause would go out in one burst.
            if self._pause_left(chat) <= 0:
                break
        await self._overall.acquire()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        if not counts_against_limits(endpoint):
            return await self._post(callback, args, kwargs)
        max_retries = self._max_retries if rate_limit_args is None else rate_limit_args
        key = chat_key(data.get("chat_id"))
        attempt = 0
        while True:
            chat = None if key is None else self._chat(key)
            await self._throttle(chat)
            async with self._in_flight:
                if self._pause_left(chat) > 0:
                    continue  # a 429 came in while we waited for a slot: wait it out first
                try:
                    return await callback(*args, **kwargs)
                except RetryAfter as exc:
                    self._retry_after(exc, chat, key, endpoint, attempt, max_retries)
            attempt += 1

    def _retry_after(
        self,
        exc: RetryAfter,
        chat: _Chat | None,
        key: int | str | None,
        endpoint: str,
        attempt: int,
        max_retries: int,
    ) -> None:
        """Pause the chat (or, without one, every chat) for the 429's wait; re-raise when the
        retries are used up."""
        wait = retry_after_seconds(exc) + RETRY_MARGIN
        where = "all chats" if chat is None else f"chat {key}"
        if attempt >= max_retries:
            logger.warning("429 on %s for %s; giving up after %d retries", endpoint, where, attempt)
            raise exc
        logger.warning("429 on %s for %s; waiting %.2f s", endpoint, where, wait)
        until = asyncio.get_running_loop().time() + wait
        if chat is None:
            self._paused_until = max(self._paused_until, until)
        else:
            chat.paused_until = max(chat.paused_until, until)

    async def _post(self, callback, args: Any, kwargs: dict[str, Any]) -> Result:
        async with self._in_flight:
            return await callback(*args, **kwargs)
