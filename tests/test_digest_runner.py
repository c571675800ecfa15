"""The digest tick over real tables, on SQLite and PostgreSQL: the team data as the digest reads
it (only the columns and answers it needs) gives the same digest as every deal loaded whole,
each team is loaded once for its managers, and the jobs come out in manager order."""

from __future__ import annotations

import gc
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.dialog.digests import bulk_objects, load_team
from bot.dialog.writer import DialogConfig
from bot.jobs import digest_runner
from bot.jobs.digest_runner import DigestRunner
from flows.digest import DealSnapshot, MoveSnapshot, RepSnapshot, build_digest
from flows.playbook import load_playbook
from storage.answers import get_answers, list_answer_changes, save_answer
from storage.db import transaction
from storage.deals import change_stage, list_deals, list_stage_changes, set_deal_attributes
from storage.models import Member
from storage.teams import get_team, list_members, update_member
from tests.factories import make_deal, make_member, make_team
from tests.test_digest_facts import _by_deal_id, random_answers

PLAYBOOK = load_playbook()
STAGES = [stage.id for stage in PLAYBOOK.stages]
NOW = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
SINCE = NOW - timedelta(days=1)
TODAY = date(2026, 11, 27)


def seed_team(session: Session, rng: random.Random, deals: int = 40) -> int:
    """A team with two reps and deals at every stage and status, with answers and moves."""
    team = make_team(session)
    reps = [make_member(session, team) for _ in range(2)]
    make_member(session, team)  # a rep who never did anything
    for n in range(deals):
        rep = reps[n % 2]
        created = NOW - timedelta(days=rng.uniform(0.2, 60))
        stage = rng.choice(STAGES)
        deal = make_deal(session, team, rep, stage_id=stage, now=created)
        for key, value in random_answers(PLAYBOOK, rng).items():
            if value is not None:
                at = created + timedelta(minutes=rng.uniform(1, 60))
                save_answer(
                    session, deal_id=deal.id, key=key, value=value, member_id=rep.id, now=at
                )
        set_deal_attributes(
            session,
            deal_id=deal.id,
            now=NOW - timedelta(days=rng.uniform(0, 40)),
            amount_minor=rng.choice([None, 0, 1_000_000, 123_456_789]),
            expected_close=rng.choice([None, TODAY - timedelta(days=3), TODAY + timedelta(30)]),
            paused_until=rng.choice([None, None, TODAY, TODAY - timedelta(days=1)]),
        )
        kind = rng.choice(["advance", "back", "won", "lost", None, None])
        if kind is not None:
            at = NOW - timedelta(hours=rng.uniform(0, 40))
            to_stage = STAGES[-1] if kind == "won" else rng.choice(STAGES)
            change_stage(
                session,
                deal_id=deal.id,
                to_stage=to_stage,
                kind=kind,
                member_id=rep.id,
                now=at,
                reason="budget cut" if kind == "lost" and rng.random() < 0.5 else None,
            )
    session.commit()
    return team.id


def loaded_whole(session: Session, team_id: int) -> tuple[list, list, list]:
    """Deals (with every answer), moves and reps, each read the plain way, one by one."""
    members = list_members(session, team_id=team_id)
    names = {m.id: m.display_name for m in members}
    deals, moves, latest = [], [], {}
    for deal in list_deals(session, team_id=team_id, statuses=None):
        deals.append(
            DealSnapshot(
                deal_id=deal.id,
                number=deal.number,
                name=deal.name,
                customer=deal.customer,
                owner_id=deal.owner_id,
                owner_name=names[deal.owner_id],
                stage_id=deal.stage_id,
                status=deal.status,
                amount_minor=deal.amount_minor,
                expected_close=deal.expected_close,
                created_at=deal.created_at,
                updated_at=deal.updated_at,
                paused_until=deal.paused_until,
                lost_reason=deal.lost_reason,
                answers=get_answers(session, deal_id=deal.id),
            )
        )
        for change in list_stage_changes(session, deal_id=deal.id):
            moves.append(
                MoveSnapshot(
                    deal.id,
                    change.from_stage,
                    change.to_stage,
                    change.kind,
                    change.changed_at,
                    change.reason,
                )
            )
            latest[change.changed_by] = max(latest.get(change.changed_by, SINCE), change.changed_at)
        for change in list_answer_changes(session, deal_id=deal.id):
            latest[change.changed_by] = max(latest.get(change.changed_by, SINCE), change.changed_at)
    reps = [RepSnapshot(m.id, m.display_name, latest.get(m.id)) for m in members if m.role == "rep"]
    return deals, moves, reps


def test_the_team_data_gives_the_digest_of_every_deal_loaded_whole(session: Session) -> None:
    rng = random.Random(27)
    team_id = seed_team(session, rng)
    seed_team(session, rng, deals=5)  # another team, left out
    team = load_team(session, team_id, SINCE, TODAY, PLAYBOOK)
    window = {"since": SINCE, "now": NOW, "today": TODAY}
    fast = build_digest(
        PLAYBOOK, deals=team.deals, moves=team.moves, reps=team.reps, facts=team.facts, **window
    )
    deals, moves, reps = loaded_whole(session, team_id)
    whole = build_digest(PLAYBOOK, deals=deals, moves=moves, reps=reps, **window)
    assert _by_deal_id(fast) == _by_deal_id(whole)
    assert whole.blocked and whole.coaching and whole.stale and whole.moves  # rich enough
    assert all(not deal.answers for deal in team.deals)  # no answers kept


def _manager(session: Session, team_id: int, name: str, timezone: str = "Asia/Shanghai") -> Member:
    team = get_team(session, team_id=team_id)
    manager = make_member(session, team, display_name=name, role="manager")
    return update_member(session, member_id=manager.id, timezone=timezone)


@pytest.fixture
def runner(engine: Engine) -> DigestRunner:
    return DigestRunner(engine, PLAYBOOK, DialogConfig(), digest_time=time(8, 30), instance="test")


def test_each_team_is_loaded_once_for_its_managers_and_jobs_keep_manager_order(
    engine: Engine, runner: DigestRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(28)
    with transaction(engine) as session:
        east, west = seed_team(session, rng, deals=8), seed_team(session, rng, deals=8)
        # Ids interleave the teams: east, west, east (a day behind), east.
        order = [
            _manager(session, east, "Ann").id,
            _manager(session, west, "Bob").id,
            _manager(session, east, "Cid", timezone="Pacific/Honolulu").id,
            _manager(session, east, "Dee").id,
        ]
        users = {i: session.get(Member, i).telegram_user_id for i in order}
    loads: list[tuple[int, date]] = []

    def counted(session, team_id, since, today, playbook):
        loads.append((team_id, today))
        return load_team(session, team_id, since, today, playbook)

    monkeypatch.setattr(digest_runner, "load_team", counted)
    jobs = runner.due(NOW, any_time=True)
    assert [job.chat_id for job in jobs] == [users[i] for i in order]
    # East once for Honolulu's day (Cid) and once for Shanghai's (Ann, Dee); then west.
    assert loads == [(east, TODAY - timedelta(days=1)), (east, TODAY), (west, TODAY)]
    ann, bob, cid, dee = (job.replies[0] for job in jobs)
    assert ann.text == dee.text and ann.photo is dee.photo  # shared, built once
    assert bob.text != ann.text and bob.photo is not None
    assert "Nov 26, 2026" in cid.text and "Nov 27, 2026" in ann.text
    assert runner.due(NOW, any_time=True) == []  # claimed: not twice


def test_bulk_objects_pauses_the_garbage_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with bulk_objects():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk_objects():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()
    with pytest.raises(ValueError), bulk_objects():
        raise ValueError
    assert gc.isenabled()


def test_a_digest_is_built_without_holding_the_write_lock_and_a_failed_build_is_retried(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a team loads, a chat turn can still write (SQLite has one writer)."""
    runner = DigestRunner(
        sqlite_engine, PLAYBOOK, DialogConfig(), digest_time=time(8, 30), instance="test"
    )
    with transaction(sqlite_engine) as session:
        team = seed_team(session, random.Random(5), deals=4)
        _manager(session, team, "Ann")
    writes: list[str] = []

    def load_while_someone_writes(session, team_id, since, today, playbook):
        other = sqlite_engine.raw_connection()
        try:
            other.execute("PRAGMA busy_timeout = 0")  # fail at once if the lock is held
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writes.append("written")
        finally:
            other.close()
        if len(writes) == 1:
            raise RuntimeError("the first build fails")
        return load_team(session, team_id, since, today, playbook)

    monkeypatch.setattr(digest_runner, "load_team", load_while_someone_writes)
    assert runner.due(NOW, any_time=True) == []  # the build failed: its claim is given back
    [job] = runner.due(NOW, any_time=True)
    assert writes == ["written", "written"] and job.replies
