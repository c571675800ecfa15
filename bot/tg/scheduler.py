"""APScheduler ticks that send due nudges and digests through the Telegram delivery.

The scheduler keeps no jobs of its own worth saving: the database rows are the truth, and every
tick claims what is due (APScheduler's in-memory job store is per process by design).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.dialog.events import Outcome
from bot.jobs.digest_runner import DigestRunner
from bot.jobs.nudge_runner import NudgeRunner
from bot.tg.delivery import Delivery

log = logging.getLogger(__name__)
STALE_PLANNING_MINUTES = 30


class Ticker:
    """The jobs; each tick can also be called directly (tests pass their own clock)."""

    def __init__(
        self,
        nudges: NudgeRunner,
        digests: DigestRunner,
        delivery: Delivery,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.nudges = nudges
        self.digests = digests
        self.delivery = delivery
        self.clock = clock
        self.scheduler: AsyncIOScheduler | None = None

    def start(self, tick_seconds: int) -> None:
        self.nudges.stopping.clear()
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        jobs = (
            (self.nudge_tick, {"seconds": tick_seconds}),
            (self.digest_tick, {"seconds": tick_seconds}),
            (self.plan_stale, {"minutes": STALE_PLANNING_MINUTES}),
        )
        for job, every in jobs:
            # One run at a time; missed runs collapse into one (rows make catching up exact).
            self.scheduler.add_job(
                job, "interval", **every, next_run_time=now, max_instances=1, coalesce=True
            )
        self.scheduler.start()

    def stop(self) -> None:
        self.nudges.stopping.set()  # a long stale planning stops at its next page
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def nudge_tick(self) -> int:
        """Send the due nudges; returns how many messages went out."""
        now = self.clock()
        sent = 0
        for batch in await asyncio.to_thread(self.nudges.due, now):
            outcome = await self.delivery.send(batch.reply, batch.chat_id)
            await asyncio.to_thread(self.nudges.delivered, batch, outcome, now)
            sent += outcome.reached
        return sent

    async def digest_tick(self, *, any_time: bool = False) -> int:
        """Send the digests whose local time has come (all: ``any_time``); returns how many."""
        now = self.clock()
        sent = 0
        for job in await asyncio.to_thread(self.digests.due, now, any_time=any_time):
            outcome = Outcome.SENT
            for reply in job.replies:
                outcome = await self.delivery.send(reply, job.chat_id)
                if not outcome.reached:  # unanswered may have arrived: the rest goes on
                    break
            await asyncio.to_thread(self.digests.delivered, job, outcome, now)
            sent += outcome.reached
        return sent

    async def plan_stale(self) -> int:
        return await asyncio.to_thread(self.nudges.plan_stale, self.clock())
