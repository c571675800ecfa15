"""NudgeRunner on its own: a tick's queries do not grow with its nudges, and one rep's bad row
holds back only that rep's nudges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, event, text, update
from sqlmodel import Session, col, select

from bot.dialog.events import Outcome
from bot.dialog.writer import DialogConfig
from bot.jobs import nudge_runner
from bot.jobs.nudge_runner import NudgeRunner
from flows.playbook import load_playbook
from storage.answers import save_answer
from storage.db import transaction
from storage.deals import set_deal_attributes
from storage.models import Deal, Nudge, NudgeMute
from storage.nudges import count_sent_since_each, schedule_nudge
from tests.factories import NOW, make_deal, make_member, make_team

# Thursday 2026-11-26, 10:00 in Shanghai (the factories' reps live there).
THURSDAY = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
RETRY = THURSDAY + timedelta(hours=1)  # a rep whose nudges could not be prepared


def make_runner(engine: Engine) -> NudgeRunner:
    return NudgeRunner(engine, load_playbook(None), DialogConfig(language="en"), "test")


def reps_with_nudges(engine: Engine, count: int, due: datetime = THURSDAY) -> list[int]:
    """``count`` reps, each with a gap, a resume and a date nudge due (three: the daily cap)."""
    reps = []
    with transaction(engine) as session:
        team = make_team(session)
        for _ in range(count):
            rep = make_member(session, team)
            gap = make_deal(session, team, rep, stage_id="potential")
            paused = make_deal(session, team, rep, stage_id="potential")
            set_deal_attributes(
                session, deal_id=paused.id, now=NOW, paused_until=due.date(), pause_reason="Budget"
            )
            dated = make_deal(session, team, rep, stage_id="commercial")
            save_answer(
                session,
                deal_id=dated.id,
                key="bid_date",
                value="2026-12-03",
                member_id=rep.id,
                now=NOW,
            )
            for deal, kind, key in (
                (gap, "gap", ""),
                (paused, "resume", ""),
                (dated, "date", "bid_date"),
            ):
                schedule_nudge(
                    session,
                    member_id=rep.id,
                    deal_id=deal.id,
                    kind=kind,
                    key=key,
                    due_at=due,
                    now=due,
                )
            reps.append(rep.id)
    return reps


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent to the database inside the block (transaction control too)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def nudges_of(engine: Engine, member_id: int) -> list[Nudge]:
    with Session(engine) as session:
        return list(session.exec(select(Nudge).where(Nudge.member_id == member_id)))


def test_a_tick_sends_as_many_statements_for_fifty_reps_as_for_one(engine):
    one = reps_with_nudges(engine, 1)
    fifty = reps_with_nudges(engine, 50, due=THURSDAY + timedelta(hours=1))
    runner = make_runner(engine)
    runner.due(THURSDAY - timedelta(days=1))  # nothing due yet; warms the caches
    counts = {}
    for reps, now in ((one, THURSDAY), (fifty, THURSDAY + timedelta(hours=2))):
        with statements(engine) as seen:
            batches = runner.due(now)
        counts[len(reps)] = len(seen)
        assert sorted(len(b.nudge_ids) for b in batches) == [3] * len(reps)
        for batch in batches:
            runner.delivered(batch, Outcome.SENT, now)
    assert counts[50] == counts[1] < 20
    for rep in one + fifty:
        assert sorted(n.state for n in nudges_of(engine, rep)) == [
            "pending",
            "sent",
            "sent",
            "sent",
        ]
    with Session(engine) as session:
        assert session.exec(select(Deal).where(col(Deal.paused_until).is_not(None))).all() == []


def test_delivering_a_batch_without_follow_ups_is_one_update(engine):
    [rep] = reps_with_nudges(engine, 1)
    with transaction(engine) as session:  # only the gap nudge is left due
        session.execute(update(Nudge).where(col(Nudge.kind) != "gap").values(state="dropped"))
    runner = make_runner(engine)
    [batch] = runner.due(THURSDAY)
    with statements(engine) as seen:
        runner.delivered(batch, Outcome.SENT, THURSDAY)
    if engine.dialect.name == "postgresql":  # one round trip; a lost record means sending again
        [statement] = seen
        assert "UPDATE nudge" in statement
        assert "set_config('synchronous_commit', 'off', true)" in statement
    else:
        assert [s.split()[0] for s in seen] == ["BEGIN", "UPDATE"]
    assert [n.state for n in nudges_of(engine, rep) if n.kind == "gap"] == ["sent"]


def test_a_batch_telegram_refuses_is_dropped_and_one_that_failed_waits(engine):
    """A 400 would come again on every retry (REFUSED); a network failure is worth one."""
    [rep] = reps_with_nudges(engine, 1)
    with transaction(engine) as session:  # only the gap nudge: no follow-ups
        session.execute(update(Nudge).where(col(Nudge.kind) != "gap").values(state="dropped"))
    runner = make_runner(engine)
    [batch] = runner.due(THURSDAY)
    runner.delivered(batch, Outcome.FAILED, THURSDAY)
    [failed] = [n for n in nudges_of(engine, rep) if n.kind == "gap"]
    assert failed.state == "pending" and failed.due_at > THURSDAY
    [batch] = runner.due(failed.due_at)
    runner.delivered(batch, Outcome.REFUSED, failed.due_at)
    assert [n.state for n in nudges_of(engine, rep) if n.kind == "gap"] == ["dropped"]


def test_a_late_record_of_a_claim_taken_over_changes_nothing(engine):
    [rep] = reps_with_nudges(engine, 1)
    with transaction(engine) as session:  # only the gap nudge: no follow-ups
        session.execute(update(Nudge).where(col(Nudge.kind) != "gap").values(state="dropped"))
    first, second = make_runner(engine), make_runner(engine)
    second.instance = "second"
    [late] = first.due(THURSDAY)
    [batch] = second.due(THURSDAY + timedelta(minutes=11))  # the first one looked dead
    first.delivered(late, Outcome.SENT, THURSDAY)
    assert [(n.state, n.claimed_by) for n in nudges_of(engine, rep) if n.kind == "gap"] == [
        ("claimed", "second")
    ]
    second.delivered(batch, Outcome.SENT, THURSDAY)
    assert [n.state for n in nudges_of(engine, rep) if n.kind == "gap"] == ["sent"]


def test_a_rep_whose_nudge_cannot_be_prepared_holds_back_only_their_own(engine, monkeypatch):
    reps = reps_with_nudges(engine, 3)
    with Session(engine) as session:
        broken = set(session.exec(select(Deal.id).where(Deal.owner_id == reps[1])))
    deal_title = nudge_runner.render.deal_title

    def failing_title(writer, deal):  # whatever a deal of theirs holds, it cannot be written
        if deal.id in broken:
            raise ValueError("cannot be written")
        return deal_title(writer, deal)

    monkeypatch.setattr(nudge_runner.render, "deal_title", failing_title)
    batches = make_runner(engine).due(THURSDAY)
    assert len(batches) == 2 and all(len(b.nudge_ids) == 3 for b in batches)
    assert {(n.state, n.due_at) for n in nudges_of(engine, reps[1])} == {("pending", RETRY)}
    assert {n.state for n in nudges_of(engine, reps[0]) + nudges_of(engine, reps[2])} == {"claimed"}


def test_a_row_that_cannot_be_read_holds_back_only_its_reps_nudges(sqlite_engine):
    reps = reps_with_nudges(sqlite_engine, 3)
    with sqlite_engine.begin() as connection:  # not JSON: what a damaged file could hold
        connection.execute(
            text(
                "UPDATE answer SET value = '{broken' WHERE deal_id IN "
                "(SELECT id FROM deal WHERE owner_id = :rep)"
            ),
            {"rep": reps[1]},
        )
    batches = make_runner(sqlite_engine).due(THURSDAY)
    assert len(batches) == 2
    assert {(n.state, n.due_at) for n in nudges_of(sqlite_engine, reps[1])} == {("pending", RETRY)}


def test_sent_today_counts_from_each_members_own_midnight(session):
    team = make_team(session)
    shanghai = make_member(session, team)
    berlin = make_member(session, team, timezone="Europe/Berlin")
    idle = make_member(session, team)
    deal = make_deal(session, team, shanghai)
    # 2026-11-26 01:00 UTC: 09:00 that day in Shanghai, 02:00 that day in Berlin;
    # 2026-11-25 20:00 UTC: 04:00 the next day in Shanghai, 21:00 the day before in Berlin.
    for member, sent_at in (
        (shanghai, datetime(2026, 11, 26, 1, 0, tzinfo=UTC)),
        (shanghai, datetime(2026, 11, 25, 20, 0, tzinfo=UTC)),
        (berlin, datetime(2026, 11, 26, 1, 0, tzinfo=UTC)),
        (berlin, datetime(2026, 11, 25, 20, 0, tzinfo=UTC)),
    ):
        session.add(
            Nudge(
                member_id=member.id,
                deal_id=deal.id,
                kind="gap",
                due_at=sent_at,
                state="sent",
                sent_at=sent_at,
                created_at=sent_at,
            )
        )
    session.flush()
    since = {
        shanghai.id: datetime(2026, 11, 25, 16, 0, tzinfo=UTC),  # 26 Nov 00:00 in Shanghai
        berlin.id: datetime(2026, 11, 25, 23, 0, tzinfo=UTC),  # 26 Nov 00:00 in Berlin
        idle.id: datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
    }
    assert count_sent_since_each(session, since=since) == {shanghai.id: 2, berlin.id: 1, idle.id: 0}


def test_many_stale_deals_are_planned_a_page_per_transaction(engine, monkeypatch):
    """Thousands of stale deals (after downtime) must not hold the write lock in one go."""
    monkeypatch.setattr(nudge_runner, "STALE_PAGE", 10)
    monkeypatch.setattr(nudge_runner, "STALE_PAUSE_SECONDS", 0)
    with transaction(engine) as session:
        team = make_team(session)
        rep = make_member(session, team)
        deal_ids = [make_deal(session, team, rep, stage_id="potential").id for _ in range(25)]
        muted = make_deal(session, team, rep, stage_id="potential")
        session.add(NudgeMute(member_id=rep.id, deal_id=muted.id, kind="stale", created_at=NOW))
    month_later = NOW + timedelta(days=40)
    planned_per_commit: list[int] = []
    planned = {"now": 0}

    def count_insert(conn, cursor, statement, parameters, context, executemany) -> None:
        planned["now"] += statement.startswith("INSERT INTO nudge ")

    def count_commit(conn) -> None:
        planned_per_commit.append(planned["now"])
        planned["now"] = 0

    event.listen(engine, "before_cursor_execute", count_insert)
    event.listen(engine, "commit", count_commit)
    try:
        assert make_runner(engine).plan_stale(month_later) == 25
    finally:
        event.remove(engine, "before_cursor_execute", count_insert)
        event.remove(engine, "commit", count_commit)
    assert max(planned_per_commit) == 10 and sum(planned_per_commit) == 25
    with Session(engine) as session:
        stale = session.exec(select(Nudge.deal_id).where(Nudge.kind == "stale")).all()
    assert sorted(stale) == deal_ids  # each once, the muted one not at all
    assert make_runner(engine).plan_stale(month_later) == 0  # nudged since: nothing again


def test_a_stopping_bot_ends_stale_planning_after_the_current_page(engine, monkeypatch):
    monkeypatch.setattr(nudge_runner, "STALE_PAGE", 10)
    with transaction(engine) as session:
        team = make_team(session)
        rep = make_member(session, team)
        for _ in range(25):
            make_deal(session, team, rep, stage_id="potential")
    runner = make_runner(engine)
    runner.stopping.set()
    month_later = NOW + timedelta(days=40)
    assert runner.plan_stale(month_later) == 10  # one page, then it noticed
    runner.stopping.clear()
    assert runner.plan_stale(month_later) == 15  # the next start plans the rest
