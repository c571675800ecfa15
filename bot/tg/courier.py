"""Sending what chat turns kept in the outbox: in order per chat, at least once.

A turn's messages are committed with its answers (bot/dialog/outbox.py) and sent right after.
What Telegram did not take (an outage, a refused connection, the process killed) stays in the
outbox: the chat goes on the backlog, and its messages are sent again, oldest first, before
anything newer for that chat; at start-up every chat with messages waiting is on it. A message
is marked done once Telegram accepted it, or refused it for good (a blocked bot, a message no
longer there to edit). A crash between the send and its mark means the message goes twice:
a duplicate is better than silence (README).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.dialog.events import Outcome, Queued
from bot.dialog.outbox import LEASE, queued
from bot.tg.delivery import Delivery
from storage.db import transaction
from storage.event_loop import LoopDatabase
from storage.models import OutboxMessage
from storage.outbox import (
    chats_with_unsent,
    forget_done,
    mark_done,
    newest_question,
    take_over_due,
    unsent,
)

log = logging.getLogger(__name__)
RETRY_SECONDS = (1, 2, 5, 10, 30)  # after failed sends, then every 30 s until Telegram answers
SWEEP_SECONDS = 30  # how often messages left by another (dead) instance are looked for
QUESTIONS_REMEMBERED = 50_000  # chats whose newest messages' ids are kept in memory
# Sent messages are marked done together, this long after the first: one commit for a burst
# rather than one per message. Short, because a process killed before the mark sends those
# messages again after its restart (at least once; bot/dialog/resends.py guards a rep's
# answer to such a copy).
MARK_SECONDS = 0.05
PROBE_SECONDS = 5  # while Telegram is silent, getMe asks whether it is back this often at most
# A reply older than this, still unsent, is not sent: the rep is told where they stand instead
# (CatchUp), as an old question arriving out of its context would be answered wrongly.
STALE_AFTER = timedelta(minutes=10)
# Drops a private chat's stale messages (row ids) and keeps, in the same transaction, what to
# send instead; run on the loop's database.
CatchUp = Callable[[int, list[int]], list[Queued]]


class Courier:
    def __init__(
        self,
        delivery: Delivery,
        database: LoopDatabase,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry_seconds: tuple[float, ...] = RETRY_SECONDS,
        mark_seconds: float = MARK_SECONDS,
        catch_up: CatchUp | None = None,
    ):
        self.delivery = delivery
        self.catch_up = catch_up
        self.database = database
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.mark_seconds = mark_seconds
        self.backlog: set[int] = set()  # chats with older messages waiting in the outbox
        self._marks: list[tuple[int, int | None]] = []  # done, not yet written
        self._marked: set[int] = set()  # row ids done in memory, perhaps not yet in the database
        self._questions: dict[int, tuple[int, int]] = {}  # chat -> (row id, message id)
        # chat -> (row id, Telegram's message id) of the newest message sent: what the rep may
        # have seen (bot/dialog/resends.py)
        self.shown: dict[int, tuple[int, int]] = {}
        self._kept: dict[int, int] = {}  # chat -> the newest row id kept for it here
        # row id -> when its send went unanswered (it goes once more, bot/tg/delivery.py)
        self._unanswered: dict[int, float] = {}
        self._answered_at = 0.0  # when Telegram last answered a send or a probe
        self._probed_at = 0.0
        self._flush: asyncio.Task | None = None
        self._loop: asyncio.Task | None = None
        self._wake = asyncio.Event()

    @property
    def idle(self) -> bool:
        """Every done message is written down (tests, shutdown)."""
        return not self._marks and (self._flush is None or self._flush.done())

    # -- a turn's messages ----------------------------------------------------------------------

    def note_kept(self, messages: list[Queued]) -> None:
        """A turn kept these (called as it returns, before the chat's next turn starts)."""
        if len(self._kept) >= QUESTIONS_REMEMBERED:
            self._kept.clear()
        for message in messages:
            if not message.edit:
                self._kept[message.chat_id] = message.id

    def newest_shown(self, chat_id: int) -> tuple[int, int] | None:
        """(row id, Telegram's message id) of the newest message kept for the chat in this
        process, if it is sent; None when one is on its way or nothing is known here."""
        shown = self.shown.get(chat_id)
        if shown is None or self._kept.get(chat_id, shown[0]) != shown[0]:
            return None
        return shown

    async def deliver(self, messages: list[Queued]) -> None:
        """Send a turn's messages: each chat's in order, chats one after the other."""
        chats: dict[int, list[Queued]] = {}
        for message in messages:
            chats.setdefault(message.chat_id, []).append(message)
        for chat_id, own in chats.items():
            await self._send_chat(chat_id, own)

    async def _send_chat(self, chat_id: int, fresh: list[Queued] | None) -> None:
        async with self.delivery.lock(chat_id):
            if fresh is None or chat_id in self.backlog:
                # Older messages wait: they go first, and the fresh ones are among them.
                rows = await self.database.run(self._unsent, chat_id)
                rows = [row for row in rows if row.id not in self._marked]
                messages = [queued(row) for row in rows]
                stale = [row.id for row in rows if self._is_stale(row)]
                if stale and self.catch_up is not None:
                    kept = [m for m in messages if m.id not in stale]
                    instead = await self.database.run(self.catch_up, chat_id, stale)
                    self.note_kept(instead)
                    messages = kept + instead
            else:
                messages = fresh
            if await self._send_in_order(chat_id, messages):
                self.backlog.discard(chat_id)
            elif chat_id not in self.backlog:
                self.backlog.add(chat_id)
                self._wake.set()  # the backlog's loop may be asleep for a sweep's length

    async def _send_in_order(self, chat_id: int, messages: list[Queued]) -> bool:
        """Send until one fails (False: it and those after it stay in the outbox).

        An edit does not hold up what follows it (a rewrite keeps its place in the chat), so a
        button press's rewrite and the next question leave side by side.
        """
        edits: list[asyncio.Task[bool]] = []
        ok = True
        for message in messages:
            if message.edit:
                target = await self._edit_target(message)
                edits.append(asyncio.ensure_future(self._edit(message, target)))
                continue
            if message.id in self._unanswered and not await self._answering(message.id):
                ok = False  # it goes once more, but only once Telegram answers again
                break
            outcome, message_id = await self.delivery.send_unlocked(message.reply, chat_id)
            if outcome is Outcome.SENT:
                self._answered_at = time.monotonic()
            if outcome is Outcome.FAILED or (
                outcome is Outcome.UNANSWERED and self._once_more(message)
            ):
                ok = False
                break
            if message_id is not None:
                self._remember_sent(chat_id, message.id, message_id, message.reply.asks)
            self._done(message, message_id, outcome)
        results = await asyncio.gather(*edits)
        return ok and all(results)

    def _is_stale(self, row: OutboxMessage) -> bool:
        """A message to a person that waited too long for Telegram to still make sense. Edits
        still go (they take buttons off answered questions), and so do posts to a group."""
        return (
            row.chat_id > 0 and row.kind == "send" and self.clock() - row.created_at > STALE_AFTER
        )

    def _once_more(self, message: Queued) -> bool:
        """Whether a send Telegram did not answer goes again: once, in case it was lost. A
        timed-out send may well have arrived, so a third copy is never risked."""
        if self._unanswered.pop(message.id, None) is not None:
            return False  # the second time: done, with the log line of _done
        if len(self._unanswered) >= QUESTIONS_REMEMBERED:
            self._unanswered.clear()
        self._unanswered[message.id] = time.monotonic()
        return True

    async def _answering(self, row_id: int) -> bool:
        """Whether Telegram answers again since the send of ``row_id`` went unanswered: some
        send got an answer since, or ``getMe`` does now (asked at most once per PROBE_SECONDS).
        Sending again into the same silence would only add a copy that may arrive later."""
        since = self._unanswered[row_id]
        if self._answered_at > since:
            return True
        now = time.monotonic()
        if now - self._probed_at < PROBE_SECONDS:
            return False
        self._probed_at = now
        if await self.delivery.probe():
            self._answered_at = time.monotonic()
            return True
        return False

    async def _edit(self, message: Queued, target: int | None) -> bool:
        if target is None:  # the question it rewrites never went out, or is long gone
            self._done(message, None, Outcome.REFUSED)
            return True
        outcome = await self.delivery.edit(message.chat_id, target, message.reply)
        if outcome is Outcome.FAILED:
            return False
        self._done(message, None, outcome)
        return True

    async def _edit_target(self, message: Queued) -> int | None:
        if message.message_id is not None:
            return message.message_id
        known = self._questions.get(message.chat_id)
        if known is not None and known[0] < message.id:
            return known[1]
        return await self.database.run(self._newest_question, message.chat_id, message.id)

    def _remember_sent(self, chat_id: int, row_id: int, message_id: int, asks: bool) -> None:
        if len(self.shown) >= QUESTIONS_REMEMBERED:
            self.shown.clear()  # the database knows them too, once marked
            self._questions.clear()
        self.shown[chat_id] = (row_id, message_id)
        if asks:
            self._questions[chat_id] = (row_id, message_id)

    def _done(self, message: Queued, message_id: int | None, outcome: Outcome) -> None:
        if outcome in (Outcome.BLOCKED, Outcome.REFUSED, Outcome.UNANSWERED):
            log.info("chat %s: message %s given up (%s)", message.chat_id, message.id, outcome)
        self._marks.append((message.id, message_id))
        self._marked.add(message.id)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.ensure_future(self._write_marks())

    async def _write_marks(self) -> None:
        """Write the marks gathered meanwhile in one transaction (one commit for a burst)."""
        await asyncio.sleep(self.mark_seconds)
        while self._marks:
            marks, self._marks = self._marks, []
            try:
                await self.database.run(self._mark, marks)
            except Exception as exc:
                # Still done in memory: not sent twice by this process; a restart sends them
                # again, which the README accepts (at least once).
                log.warning("could not record %s sent messages (%s)", len(marks), exc)
                return
            self._marked.difference_update(row_id for row_id, _ in marks)

    # -- the backlog ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Put every chat with messages waiting on the backlog, and keep working it off."""
        try:
            chats = await self.database.run(self._chats_waiting)
        except Exception as exc:
            log.warning("could not read the outbox at start-up (%s); trying later", exc)
            chats = []
        self.backlog.update(chats)
        if chats:
            log.info("%s chats have messages waiting from before; sending them", len(chats))
        self._wake.set()
        self._loop = asyncio.ensure_future(self._work_off_backlog())

    async def stop(self) -> None:
        """Stop retrying and write down what was sent (unsent messages wait for the next start)."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        if self._flush is not None:
            await asyncio.gather(self._flush, return_exceptions=True)
        if self._marks:
            await self._write_marks()

    async def _work_off_backlog(self) -> None:
        failures = 0
        swept = time.monotonic()
        while True:
            delay = self.retry_seconds[min(failures, len(self.retry_seconds) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay if self.backlog else SWEEP_SECONDS)
            self._wake.clear()
            try:
                if time.monotonic() - swept >= SWEEP_SECONDS:
                    swept = time.monotonic()
                    self.backlog.update(await self.database.run(self._sweep))
                for chat_id in sorted(self.backlog):
                    await self._send_chat(chat_id, None)
            except Exception as exc:  # the database failed: the messages wait in the outbox
                log.warning("could not work off the outbox (%s); trying again", exc)
            failures = failures + 1 if self.backlog else 0

    # -- database work (run on the loop's database) ---------------------------------------------

    def _unsent(self, chat_id: int) -> list:
        with transaction(self.database.engine, read_only=True) as session:
            return unsent(session, chat_id=chat_id)

    def _newest_question(self, chat_id: int, before_id: int) -> int | None:
        with transaction(self.database.engine, read_only=True) as session:
            return newest_question(session, chat_id=chat_id, before_id=before_id)

    def _chats_waiting(self) -> list[int]:
        with transaction(self.database.engine, read_only=True) as session:
            return chats_with_unsent(session)

    def _mark(self, marks: list[tuple[int, int | None]]) -> None:
        with self.database.engine.begin() as connection:  # no ORM: a statement, then a commit
            mark_done(connection, marks, now=self.clock())

    def _sweep(self) -> list[int]:
        with transaction(self.database.engine) as session:
            forget_done(session, now=self.clock())
            return take_over_due(session, now=self.clock(), lease=LEASE)
