"""The digest's bulk reads (storage/digests.py) on SQLite and PostgreSQL: the same values as
the per-deal functions, only the rows asked for."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session

from storage.answers import get_answers, save_answer
from storage.deals import change_stage, get_deal, set_deal_attributes
from storage.digests import (
    DIGEST_DEAL_COLUMNS,
    claim_digest,
    finish_digest,
    last_activity_by_member,
    last_digest_at,
    open_deal_answers,
    release_digest,
    team_deals,
    team_moves_since,
)
from storage.models import DigestRun
from storage.nudges import CLAIM_TIMEOUT
from tests.factories import NOW, make_deal, make_member, make_team

# Every kind of JSON an answer holds, including numbers SQLite stores as numbers.
VALUES: dict[str, Any] = {
    "count": 250,
    "big": 10**15,
    "ratio": 2.5,
    "long_float": 0.1 + 0.2,  # 17 significant digits: a CAST to TEXT on SQLite keeps 15
    "whole_float": 3.0,
    "digits": "123",
    "empty_text": "",
    "empty_list": [],
    "empty_dict": {},
    "item": {"checked": True, "note": '客户口头确认 "yes"'},
    "unchecked": {"checked": False, "note": None},
    "yes": True,
    "no": False,
    "people": [{"name": "王总", "role": "decision_maker", "attitude": -1}],
    "choices": ["a", "b"],
}


def _answer(session: Session, deal_id: int, key: str, value: Any, member_id: int, at=NOW) -> None:
    save_answer(session, deal_id=deal_id, key=key, value=value, member_id=member_id, now=at)


def test_open_deal_answers_decode_like_get_answers(session: Session) -> None:
    team = make_team(session)
    rep = make_member(session, team)
    deal = make_deal(session, team, rep)
    for key, value in VALUES.items():
        _answer(session, deal.id, key, value, rep.id)
    session.commit()
    [(deal_id, got)] = list(open_deal_answers(session, team_id=team.id))
    assert deal_id == deal.id
    plain = get_answers(session, deal_id=deal.id)
    assert got == plain == VALUES
    # Types too (SQLite keeps 3.0 as the integer 3, on both paths).
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in plain.items()}


def test_open_deal_answers_only_open_deals_of_the_team_and_the_keys_asked(session: Session):
    team, other = make_team(session), make_team(session)
    rep, outsider = make_member(session, team), make_member(session, other)
    first = make_deal(session, team, rep, stage_id="potential")
    second = make_deal(session, team, rep, stage_id="intent")
    lost = make_deal(session, team, rep, stage_id="potential")
    silent = make_deal(session, team, rep, stage_id="potential")  # no answers at all
    theirs = make_deal(session, other, outsider, stage_id="potential")
    for deal in (first, second, lost, theirs):
        for key in ("budget", "needs", "sponsor"):
            _answer(session, deal.id, key, f"{key} of {deal.id}", rep.id)
    change_stage(
        session, deal_id=lost.id, to_stage="potential", kind="lost", member_id=rep.id, now=NOW
    )
    session.commit()

    every = dict(open_deal_answers(session, team_id=team.id))
    assert sorted(every) == sorted([first.id, second.id])
    assert every[first.id] == {k: f"{k} of {first.id}" for k in ("budget", "needs", "sponsor")}
    assert silent.id not in every

    keys = {"potential": {"budget"}, "intent": {"sponsor", "needs"}}
    some = dict(open_deal_answers(session, team_id=team.id, keys=keys))
    assert some == {
        first.id: {"budget": f"budget of {first.id}"},
        second.id: {"needs": f"needs of {second.id}", "sponsor": f"sponsor of {second.id}"},
    }
    assert dict(open_deal_answers(session, team_id=team.id, keys={"intent": set()})) == {}


def test_team_deals_are_the_teams_by_number_with_the_digest_columns(session: Session) -> None:
    team, other = make_team(session), make_team(session)
    rep = make_member(session, team)
    deals = [make_deal(session, team, rep) for _ in range(3)]
    set_deal_attributes(
        session,
        deal_id=deals[1].id,
        now=NOW,
        amount_minor=12_345,
        expected_close=date(2026, 3, 1),
        paused_until=date(2026, 2, 1),
    )
    make_deal(session, other, make_member(session, other))
    session.commit()
    rows = list(team_deals(session, team_id=team.id))
    assert [row.id for row in rows] == [d.id for d in deals]
    for row, deal in zip(rows, deals, strict=True):
        stored = get_deal(session, deal_id=deal.id)
        assert tuple(row) == tuple(getattr(stored, name) for name in DIGEST_DEAL_COLUMNS)
        assert row.created_at.tzinfo is not None


def test_team_moves_since_in_order_from_since_on(session: Session) -> None:
    team, other = make_team(session), make_team(session)
    rep = make_member(session, team)
    deal = make_deal(session, team, rep, stage_id="potential")
    theirs = make_deal(session, other, make_member(session, other), stage_id="potential")
    moves = [("intent", "advance", 1), ("potential", "back", 2), ("intent", "advance", 3)]
    for stage, kind, hours in moves:
        at = NOW + timedelta(hours=hours)
        change_stage(session, deal_id=deal.id, to_stage=stage, kind=kind, member_id=rep.id, now=at)
        change_stage(
            session, deal_id=theirs.id, to_stage=stage, kind=kind, member_id=rep.id, now=at
        )
    session.commit()
    got = team_moves_since(session, team_id=team.id, since=NOW + timedelta(hours=2))
    assert [tuple(row) for row in got] == [
        (deal.id, "intent", "potential", "back", NOW + timedelta(hours=2), None),
        (deal.id, "potential", "intent", "advance", NOW + timedelta(hours=3), None),
    ]


def test_last_activity_is_each_members_newest_answer_or_stage_change(session: Session) -> None:
    team, other = make_team(session), make_team(session)
    ann, bob, cid = (make_member(session, team) for _ in range(3))
    outsider = make_member(session, other)
    deal = make_deal(session, team, ann, stage_id="potential")
    _answer(session, deal.id, "budget", 1, ann.id, NOW + timedelta(hours=1))
    _answer(session, deal.id, "budget", 2, ann.id, NOW + timedelta(hours=3))
    change_stage(
        session,
        deal_id=deal.id,
        to_stage="intent",
        kind="advance",
        member_id=ann.id,
        now=NOW + timedelta(hours=2),
    )
    change_stage(
        session,
        deal_id=deal.id,
        to_stage="approved",
        kind="advance",
        member_id=bob.id,
        now=NOW + timedelta(hours=5),
    )
    _answer(session, deal.id, "needs", "x", bob.id, NOW + timedelta(hours=4))
    _answer(session, deal.id, "sponsor", "y", outsider.id, NOW + timedelta(hours=9))
    session.commit()
    assert last_activity_by_member(session, team_id=team.id) == {
        ann.id: NOW + timedelta(hours=3),
        bob.id: NOW + timedelta(hours=5),
    }  # cid did nothing; the outsider is another team's
    assert cid.id not in last_activity_by_member(session, team_id=team.id)


def test_a_digest_is_claimed_once_a_day_and_an_abandoned_claim_is_taken_over(session: Session):
    team = make_team(session)
    meg = make_member(session, team, role="manager")
    day = NOW.date()

    def claim(instance: str, at=NOW):
        return claim_digest(session, member_id=meg.id, digest_date=day, instance=instance, now=at)

    first = claim("a")
    assert first is not None
    assert claim("b") is None  # being built by "a"
    assert claim("b", NOW + CLAIM_TIMEOUT) is None  # not yet abandoned
    later = NOW + CLAIM_TIMEOUT + timedelta(seconds=1)
    assert claim("b", later) == first  # "a" died: "b" takes the same run over
    run = session.get(DigestRun, first)
    session.refresh(run)
    assert (run.claimed_by, run.claimed_at) == ("b", later)
    assert claim("c", later) is None
    finish_digest(session, run_id=first, now=later)
    assert claim("c", later + timedelta(days=1)) is None  # sent: never again that day
    other_day = claim_digest(
        session, member_id=meg.id, digest_date=day + timedelta(days=1), instance="c", now=later
    )
    assert other_day == first + 1  # the refused claims spent no ids (they run every tick)
    release_digest(session, run_id=other_day)  # the send failed: the next tick tries again
    assert session.get(DigestRun, other_day) is None
    again = claim_digest(
        session, member_id=meg.id, digest_date=day + timedelta(days=1), instance="c", now=later
    )
    assert again is not None
    session.commit()


def test_last_digest_at_is_the_newest_sent_run_of_the_member(session: Session) -> None:
    team = make_team(session)
    manager, other = make_member(session, team), make_member(session, team)
    assert last_digest_at(session, member_id=manager.id) is None
    for days, member in ((3, manager), (2, manager), (1, other)):
        day = date(2026, 1, 10) - timedelta(days=days)
        run = claim_digest(session, member_id=member.id, digest_date=day, instance="a", now=NOW)
        finish_digest(session, run_id=run, now=NOW - timedelta(days=days))
    session.commit()
    got = last_digest_at(session, member_id=manager.id)
    assert got == NOW - timedelta(days=2) and got.utcoffset() == timedelta(0)
