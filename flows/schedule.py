"""When to nudge a rep: working mornings, quiet hours and date reminders, in local time.

Pure functions over aware datetimes; the member's time zone comes with ``now``. Daylight saving
is handled by building local wall-clock times and letting zoneinfo pick the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

SATURDAY = 5


@dataclass(frozen=True)
class NudgePolicy:
    morning: time = time(9, 0)  # when follow-ups and reminders are due, local time
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 30)
    quiet_weekends: bool = False  # True: nothing on Saturdays and Sundays
    daily_cap: int = 3  # nudge messages per rep per local day
    reminder_days: tuple[int, ...] = (3, 1)  # days before a date field to remind
    # Gap follow-up this many hours after an update run; None: the next working morning.
    gap_delay_hours: int | None = None


def at_local(day: date, clock: time, like: datetime) -> datetime:
    """``day`` at wall-clock ``clock`` in the time zone of ``like``."""
    return datetime.combine(day, clock, tzinfo=like.tzinfo)


def next_working_morning(now: datetime, policy: NudgePolicy) -> datetime:
    """The next working day's morning after ``now`` (Monday to Friday)."""
    day = now.date() + timedelta(days=1)
    while day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return at_local(day, policy.morning, now)


def is_quiet(now: datetime, policy: NudgePolicy) -> bool:
    """Whether ``now`` (local) falls in the quiet hours or, if chosen, on a weekend."""
    if policy.quiet_weekends and now.weekday() >= SATURDAY:
        return True
    clock = now.time().replace(tzinfo=None)
    if policy.quiet_start <= policy.quiet_end:
        return policy.quiet_start <= clock < policy.quiet_end
    return clock >= policy.quiet_start or clock < policy.quiet_end


def quiet_until(now: datetime, policy: NudgePolicy) -> datetime:
    """The first moment after ``now`` outside the quiet hours (and weekend, if chosen)."""
    day = now.date()
    clock = now.time().replace(tzinfo=None)
    if policy.quiet_start > policy.quiet_end and clock >= policy.quiet_start:
        day += timedelta(days=1)
    end = at_local(day, policy.quiet_end, now)
    while policy.quiet_weekends and end.weekday() >= SATURDAY:
        end = at_local(end.date() + timedelta(days=1), policy.quiet_end, now)
    return end if end > now else now


def start_of_day(now: datetime) -> datetime:
    return at_local(now.date(), time(0, 0), now)


def reminder_times(due: date, now: datetime, policy: NudgePolicy) -> list[datetime]:
    """Mornings ``reminder_days`` before a date, those still ahead of ``now``."""
    times = [at_local(due - timedelta(days=d), policy.morning, now) for d in policy.reminder_days]
    return sorted(t for t in times if t > now)
