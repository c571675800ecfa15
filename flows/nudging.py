"""What becomes of a rep's due nudges: sent now, held for later, or dropped.

The policy, as pure functions: quiet hours hold everything until they end; a nudge whose
reason has gone (the gap was closed, the deal moved on, was paused, won or lost) is dropped;
at most ``daily_cap`` nudges a local day reach a rep and the rest wait for the next morning.
The caller loads the rows and records the outcome (bot/jobs/nudge_runner.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from flows.engine import gap_report
from flows.periods import starts
from flows.playbook import FieldSpec, Playbook
from flows.schedule import NudgePolicy, at_local, is_quiet, quiet_until

T = TypeVar("T")


class NudgedDeal(Protocol):
    """What the policy reads of a deal (storage's Deal has it)."""

    status: str
    stage_id: str
    paused_until: date | None
    updated_at: datetime


@dataclass
class Decision(Generic[T]):
    """One rep's due nudges, sorted: ``send`` now, ``later`` by due time, ``drop``."""

    send: list[T] = field(default_factory=list)
    drop: list[T] = field(default_factory=list)
    later: dict[datetime, list[T]] = field(default_factory=dict)


def decide(
    nudges: Sequence[T],
    *,
    local: datetime,
    policy: NudgePolicy,
    sent_today: int,
    wanted: Callable[[T], bool],
) -> Decision[T]:
    """Sort one rep's due ``nudges`` (oldest first) at ``local``, the rep's own time.

    ``sent_today``: nudges the rep already got since their local midnight; ``wanted``: whether
    a nudge still makes sense (see ``still_wanted``), asked only outside quiet hours.
    """
    if is_quiet(local, policy):
        return Decision(later={quiet_until(local, policy): list(nudges)})
    verdicts = [(nudge, wanted(nudge)) for nudge in nudges]
    kept = [nudge for nudge, ok in verdicts if ok]
    decision = Decision(drop=[nudge for nudge, ok in verdicts if not ok])
    room = max(policy.daily_cap - sent_today, 0)
    decision.send, held = kept[:room], kept[room:]
    if held:
        tomorrow = at_local(local.date() + timedelta(days=1), policy.morning, local)
        decision.later[tomorrow] = held
    return decision


def still_wanted(
    playbook: Playbook,
    *,
    kind: str,
    key: str | None,
    deal: NudgedDeal | None,
    answers: dict[str, Any],
    local: datetime,
) -> bool:
    """Whether a nudge of ``kind`` about ``deal`` still makes sense at ``local``.

    A gap follow-up only while the stage has open gaps, a stale nudge only while the deal
    still has had no update, a date reminder only until the date; none for a deal that is no
    longer open or sits at a stage the team's playbook no longer has, and neither gap nor
    stale nudges while the deal is paused. A resume nudge (the pause ends) always.
    """
    if deal is None or deal.status != "open" or not _has_stage(playbook, deal.stage_id):
        return False
    today = local.date()
    if kind == "resume":
        return True
    if kind in ("gap", "stale") and is_paused(deal, today):
        return False
    if kind == "gap":
        return not gap_report(playbook, deal.stage_id, answers).closed
    if kind == "stale":
        days = playbook.stage(deal.stage_id).stale_after_days
        return deal.updated_at < local - timedelta(days=days)
    due = reminded_date(playbook, key, answers)
    return due is not None and due >= today


def is_paused(deal: NudgedDeal, today: date) -> bool:
    return deal.paused_until is not None and deal.paused_until >= today


def reminded_date(playbook: Playbook, key: str | None, answers: dict[str, Any]) -> date | None:
    """The date a reminder field ``key`` holds in ``answers``; None if it no longer exists."""
    try:
        spec = playbook.field(key or "")
    except KeyError:
        return None
    return reminder_date(spec, answers.get(spec.id))


def reminder_date(spec: FieldSpec, value: Any) -> date | None:
    """The day a reminder field's date or period starts: a rep who said "March" is reminded
    before March begins."""
    return starts(reminder_key(spec, value))


def reminder_key(spec: FieldSpec, value: Any) -> str | None:
    """The stored date or period (``flows.periods``) of a date field or a milestone."""
    if spec.type == "milestone" and isinstance(value, dict):
        value = value.get("date")
    return value if isinstance(value, str) else None


def reminder_policy(policy: NudgePolicy, spec: FieldSpec) -> NudgePolicy:
    """The field's own remind_days, where the playbook gives them."""
    return replace(policy, reminder_days=tuple(spec.remind_days)) if spec.remind_days else policy


def _has_stage(playbook: Playbook, stage_id: str) -> bool:
    return any(stage.id == stage_id for stage in playbook.stages)
