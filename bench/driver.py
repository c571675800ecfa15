"""Offering updates to the bot and timing its answers, inside the fake Bot API's event loop.

Two ways to offer load:

* saturated: every user sends its first update at once and its next one the moment the
  answer to the previous one is complete, so getUpdates always finds a queue (up to one update
  per user); throughput is counted from the first answer to the last.
* open loop: updates are offered on a fixed clock (``rate`` per second) whatever the bot is
  doing; each tick takes the user who has waited longest among those whose answer is complete.
  The scheduler never waits for an answer: if no user is ready at a tick (the bot is far
  behind), the tick is counted as a stall and skipped, which the report shows.

Latency is from the update being added to the fake's queue (available to getUpdates) to the
request that completes its answer arriving at the fake, both on this process's clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bench.reps import Action, User


@dataclass
class Outcome:
    updates: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    first_answer: float | None = None
    last_answer: float | None = None
    started: float = 0.0
    stalls: int = 0
    max_lag: float = 0.0  # open loop: how late the scheduler offered an update, at worst
    unexpected: int = 0
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        span = (self.last_answer or 0) - (self.first_answer or 0)
        ordered = sorted(self.latencies)
        return {
            "updates": self.updates,
            "answered": len(self.latencies),
            "per_second": (len(ordered) - 1) / span if span > 0 else None,
            "seconds": (self.last_answer or self.started) - self.started,
            "p50_ms": _percentile(ordered, 50),
            "p95_ms": _percentile(ordered, 95),
            "p99_ms": _percentile(ordered, 99),
            "max_ms": ordered[-1] * 1000 if ordered else None,
            "stalls": self.stalls,
            "max_lag_ms": self.max_lag * 1000,
            "unexpected": self.unexpected,
            "complete": self.complete,
        }


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    rank = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return ordered[rank] * 1000


class Driver:
    """Plays ``users`` against the fake; ``on_message`` is hooked into the fake's handlers."""

    def __init__(self, fake, users: list[User]):
        self.fake = fake
        self.users = {u.user_id: u for u in users}
        self.waiting: dict[int, float] = {}  # user id -> when their update was made available
        self.ready: deque[tuple[User, Action]] = deque()
        self.outcome = Outcome()
        self.open_loop = False
        self.finished = asyncio.Event()

    # -- called by the fake ---------------------------------------------------------------------

    def on_message(self, kind: str, chat_id: int, message: dict[str, Any], at: float) -> None:
        user = self.users.get(chat_id)
        if user is None or chat_id not in self.waiting or not user.answered(kind, message):
            return
        made = self.waiting.pop(chat_id)
        outcome = self.outcome
        outcome.latencies.append(at - made)
        outcome.first_answer = outcome.first_answer or at
        outcome.last_answer = at
        action = user.next()
        if action is None:
            self._maybe_finished()
        elif self.open_loop:
            self.ready.append((user, action))
        else:
            self._offer(user, action)

    # -- offering updates ---------------------------------------------------------------------

    def _offer(self, user: User, action: Action) -> None:
        if action.data is not None:
            self.fake.callback(user.user_id, action.data, action.message_id)
        else:
            self.fake.user_message(user.user_id, action.text, first_name="Rep")
        self.waiting[user.user_id] = time.perf_counter()
        self.outcome.updates += 1

    def _maybe_finished(self) -> None:
        if not self.waiting and not self.ready:
            self.finished.set()

    async def saturated(self, timeout: float) -> dict[str, Any]:
        self.outcome.started = time.perf_counter()
        for user in self.users.values():
            action = user.first()
            if action is not None:
                self._offer(user, action)
        return await self._finish(timeout)

    async def open_loop_run(self, rate: float, timeout: float) -> dict[str, Any]:
        self.open_loop = True
        for user in self.users.values():
            action = user.first()
            if action is not None:
                self.ready.append((user, action))
        interval = 1.0 / rate
        start = self.outcome.started = time.perf_counter() + 0.01
        deadline = start + timeout
        tick = 0
        while self.ready or self.waiting:
            due = start + tick * interval
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            if now > deadline:
                break
            self.outcome.max_lag = max(self.outcome.max_lag, now - due)
            if self.ready:
                self._offer(*self.ready.popleft())
            else:
                self.outcome.stalls += 1
            tick += 1
        return await self._finish(max(deadline - time.perf_counter(), 0.5))

    async def _finish(self, timeout: float) -> dict[str, Any]:
        self._maybe_finished()
        try:
            await asyncio.wait_for(self.finished.wait(), timeout)
        except TimeoutError:
            self.outcome.complete = False
        self.outcome.unexpected = sum(u.unexpected for u in self.users.values())
        return self.outcome.summary()
