"""The nudge policy without a database: quiet hours, the daily cap and whether a nudge is
still wanted (flows/nudging.py). The runner's tests (test_nudge_runner.py, test_nudges.py)
show the same rules through the database and Telegram."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.nudging import Decision, decide, reminder_policy, still_wanted
from flows.playbook import load_playbook
from flows.schedule import NudgePolicy
from tests.test_engine import completed

PLAYBOOK = load_playbook()
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)
POLICY = NudgePolicy(daily_cap=3)
FIRST = PLAYBOOK.stages[0]
RFP = PLAYBOOK.field("procure_rfp_issued")


@dataclass
class FakeDeal:
    status: str = "open"
    stage_id: str = FIRST.id
    paused_until: date | None = None
    updated_at: datetime = MONDAY_NOON


def sort(nudges, local=MONDAY_NOON, sent_today=0, unwanted=()) -> Decision:
    return decide(
        nudges,
        local=local,
        policy=POLICY,
        sent_today=sent_today,
        wanted=lambda nudge: nudge not in unwanted,
    )


def test_quiet_hours_hold_everything_until_they_end_and_judge_nothing():
    evening = MONDAY_NOON.replace(hour=22)
    decision = decide(
        ["a", "b"],
        local=evening,
        policy=POLICY,
        sent_today=0,
        wanted=lambda nudge: pytest.fail("asked whether a nudge is wanted in quiet hours"),
    )
    tuesday_morning = datetime(2026, 11, 24, 8, 30, tzinfo=SHANGHAI)
    assert decision == Decision(later={tuesday_morning: ["a", "b"]})


def test_quiet_weekends_hold_until_monday():
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI)
    policy = NudgePolicy(quiet_weekends=True)
    decision = decide(["a"], local=saturday, policy=policy, sent_today=0, wanted=bool)
    assert decision.later == {datetime(2026, 11, 30, 8, 30, tzinfo=SHANGHAI): ["a"]}


def test_the_daily_cap_sends_the_oldest_and_holds_the_rest_for_the_next_morning():
    decision = sort(["a", "b", "c", "d", "e"], sent_today=1)
    assert decision.send == ["a", "b"]
    assert decision.later == {datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI): ["c", "d", "e"]}
    assert decision.drop == []


def test_a_cap_used_up_sends_nothing_and_unwanted_nudges_do_not_count_against_it():
    assert sort(["a"], sent_today=5).send == []
    decision = sort(["a", "b", "c", "d"], unwanted={"a", "c"})
    assert (decision.send, decision.drop, decision.later) == (["b", "d"], ["a", "c"], {})


def wanted(kind: str, deal: FakeDeal | None = None, answers=None, key=None, local=MONDAY_NOON):
    return still_wanted(PLAYBOOK, kind=kind, key=key, deal=deal, answers=answers or {}, local=local)


def test_a_gap_nudge_lasts_while_the_stage_has_open_gaps():
    assert wanted("gap", FakeDeal())
    assert not wanted("gap", FakeDeal(), answers=completed(FIRST))


@pytest.mark.parametrize("kind", ["gap", "stale", "resume", "date"])
def test_no_nudge_for_a_closed_deal_a_missing_one_or_a_stage_the_playbook_dropped(kind):
    assert not wanted(kind, FakeDeal(status="won"))
    assert not wanted(kind, FakeDeal(status="lost"))
    assert not wanted(kind, None)
    assert not wanted(kind, FakeDeal(stage_id="no_such_stage"))


def test_a_paused_deal_gets_no_gap_or_stale_nudge_but_its_resume():
    paused = FakeDeal(paused_until=MONDAY_NOON.date(), updated_at=MONDAY_NOON - timedelta(99))
    assert not wanted("gap", paused) and not wanted("stale", paused)
    assert wanted("resume", paused)
    yesterday = MONDAY_NOON.date() - timedelta(days=1)
    assert wanted("gap", FakeDeal(paused_until=yesterday))


def test_a_stale_nudge_only_while_the_deal_has_had_no_update_for_the_stage_s_days():
    days = FIRST.stale_after_days
    assert wanted("stale", FakeDeal(updated_at=MONDAY_NOON - timedelta(days=days, hours=1)))
    assert not wanted("stale", FakeDeal(updated_at=MONDAY_NOON - timedelta(days=days - 1)))


def test_a_date_reminder_until_the_date_and_not_for_a_field_gone_or_cleared():
    rfp = {RFP.id: {"date": "2026-11-25", "owner": "IT"}}
    assert wanted("date", FakeDeal(), answers=rfp, key=RFP.id)
    after = MONDAY_NOON + timedelta(days=3)
    assert not wanted("date", FakeDeal(updated_at=after), answers=rfp, key=RFP.id, local=after)
    assert not wanted("date", FakeDeal(), answers={}, key=RFP.id)
    assert not wanted("date", FakeDeal(), answers=rfp, key="no_such_field")


def test_a_field_s_own_reminder_days_win_over_the_team_s():
    own = RFP.model_copy(update={"remind_days": [5, 2]})
    assert reminder_policy(POLICY, own).reminder_days == (5, 2)
    assert reminder_policy(POLICY, RFP).reminder_days == POLICY.reminder_days
    assert reminder_policy(POLICY, RFP).morning == time(9, 0)
