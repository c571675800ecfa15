"""Refused presses (forged, or from old messages), logged at most once a minute per member.

One line per press let a member fill the log by replaying a button; a count a minute still
shows an operator who is probing what, and how hard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
EVERY_SECONDS = 60.0
MAX_MEMBERS = 10_000  # members with a pending count; beyond that the oldest are forgotten


class Refusals:
    def __init__(
        self, level: int, every: float = EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self.level = level
        self.every = every
        self.clock = clock
        self._counts: dict[int, tuple[float, int]] = {}  # member id: (last logged at, since then)

    def note(self, member_id: int, what: str) -> None:
        """Count one refusal; log it (with those not logged since) if a minute has passed."""
        now = self.clock()
        logged_at, held = self._counts.get(member_id, (None, 0))
        if logged_at is not None and now - logged_at < self.every:
            self._counts[member_id] = (logged_at, held + 1)
            return
        if held:
            log.log(
                self.level, "member %s: %s (and %d more in the last minute)", member_id, what, held
            )
        else:
            log.log(self.level, "member %s: %s", member_id, what)
        if len(self._counts) >= MAX_MEMBERS:
            self._counts.pop(next(iter(self._counts)))
        self._counts[member_id] = (now, 0)

    def forget(self) -> None:
        """Drop every count (tests start each from nothing)."""
        self._counts.clear()


FORGED = Refusals(logging.WARNING)  # a deal, nudge or request that is not the member's
STALE = Refusals(logging.INFO)  # a press that no longer means anything (or never did)
