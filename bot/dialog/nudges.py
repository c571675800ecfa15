"""Nudges in the dialog: planned when a rep leaves gaps or saves a date, answered by buttons.

Sending due nudges is the scheduler's job (bot/jobs/nudge_runner.py); here they are only planned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.dialog import render
from bot.dialog.access import deal_for
from bot.dialog.buttons import AnswerNudge
from bot.dialog.turn import ButtonRoutes, Turn, member_now
from flows.nudging import is_paused, reminder_date, reminder_policy
from flows.playbook import FieldSpec
from flows.schedule import NudgePolicy, at_local, next_working_morning, reminder_times
from storage.models import Deal
from storage.nudges import drop_pending, get_nudge, mute_nudge, schedule_nudge, snooze_nudge
from storage.teams import get_member

SNOOZE_DAYS = {"1": 1, "7": 7}
MUTE = "x"


def plan_gap_follow_up(turn: Turn, deal: Deal) -> None:
    """After an update run: follow up the next working morning if required gaps are left."""
    report = turn.deals.gap_report(deal, turn.playbook)
    if deal.status != "open" or report.closed or is_paused(deal, turn.now.date()):
        drop_pending(turn.session, deal_id=deal.id, kinds=("gap",))
        return
    schedule_nudge(
        turn.session,
        member_id=deal.owner_id,
        deal_id=deal.id,
        kind="gap",
        due_at=follow_up_time(owner_now(turn, deal), turn.config.nudges),
        now=turn.now,
    )


def owner_now(turn: Turn, deal: Deal) -> datetime:
    """Now in the deal owner's time zone: nudges go to the owner, whoever acted."""
    owner = get_member(turn.session, member_id=deal.owner_id)
    return member_now(turn.now, owner) if owner is not None else turn.now


def follow_up_time(now: datetime, policy: NudgePolicy) -> datetime:
    if policy.gap_delay_hours is not None:
        return now + timedelta(hours=policy.gap_delay_hours)
    return next_working_morning(now, policy)


def plan_date_reminder(turn: Turn, deal: Deal, spec: FieldSpec, value: Any) -> None:
    """A date field marked ``remind``: the next reminder before it (the rest follow on)."""
    due = reminder_date(spec, value)
    policy = reminder_policy(turn.config.nudges, spec)
    times = reminder_times(due, owner_now(turn, deal), policy) if due else []
    if not times:
        drop_pending(turn.session, deal_id=deal.id, kinds=("date",), key=spec.id)
        return
    schedule_nudge(
        turn.session,
        member_id=deal.owner_id,
        deal_id=deal.id,
        kind="date",
        key=spec.id,
        due_at=times[0],
        now=turn.now,
    )


def nudge_button(turn: Turn, pressed: AnswerNudge) -> bool:
    """Snooze or mute a nudge that was sent to this member; False if it is not theirs."""
    if pressed.action not in (*SNOOZE_DAYS, MUTE):
        return False
    nudge = get_nudge(turn.session, nudge_id=pressed.nudge_id)
    if nudge is None or nudge.member_id != turn.member.id:
        return False
    deal = deal_for(turn.deals, turn.member, nudge.deal_id)
    if deal is None:
        return False
    title = render.deal_title(turn, deal)
    if pressed.action == MUTE:
        mute_nudge(turn.session, nudge=nudge, member_id=turn.member.id, now=turn.now)
        turn.response.notice = turn.text("nudge.muted", deal=title)
        return True
    days = SNOOZE_DAYS[pressed.action]
    due = at_local(turn.now.date() + timedelta(days=days), turn.config.nudges.morning, turn.now)
    snoozed = snooze_nudge(turn.session, nudge=nudge, due_at=due, now=turn.now)
    key = f"nudge.snoozed_{pressed.action}" if snoozed is not None else "nudge.muted"
    turn.response.notice = turn.text(key, deal=title)
    return True


BUTTONS: ButtonRoutes = {AnswerNudge: nudge_button}
