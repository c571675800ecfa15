"""Tests of storage/: migrations, column types, and the data access functions."""

from __future__ import annotations

import logging
import stat
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, inspect, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlmodel import Session, SQLModel, select

from storage.answers import delete_answer, get_answers, list_answer_changes, save_answer
from storage.conversations import (
    clear_conversation,
    get_conversation,
    get_member_and_state,
    save_conversation,
)
from storage.db import (
    alembic_config,
    checkpoint_in_background,
    make_engine,
    transaction,
    upgrade,
)
from storage.deals import (
    change_stage,
    create_deal,
    get_deal,
    get_deal_by_number,
    get_deal_with_answers,
    list_deals,
    list_stage_changes,
    set_deal_attributes,
)
from storage.errors import NotFoundError
from storage.models import Answer, Deal, Member
from storage.teams import (
    create_team,
    get_member,
    get_member_by_telegram_id,
    get_team,
    get_team_by_name,
    list_members,
    update_member,
)
from storage.turns import start_turn
from tests.factories import NOW, make_deal, make_member, make_team

TABLES = {"team", "member", "deal", "answer", "answer_change", "stage_change", "conversation"}
LATER = NOW + timedelta(hours=1)


def _setup(session: Session) -> tuple[Any, Any, Any]:
    team = make_team(session)
    member = make_member(session, team)
    deal = make_deal(session, team, member)
    session.commit()
    return team, member, deal


# --- migrations and engines -----------------------------------------------------------------


def test_migrations_create_all_tables_and_match_models(engine: Engine) -> None:
    upgrade(engine)  # a second run is a no-op
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head,)]
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_sqlite_journal_mode_is_wal_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_sqlite_can_flush_every_commit_to_disk(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}", sqlite_synchronous="full")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        make_engine("sqlite://", sqlite_synchronous="off")


def test_sqlite_enforces_foreign_keys(sqlite_session: Session) -> None:
    team = make_team(sqlite_session)
    member = make_member(sqlite_session, team)
    sqlite_session.add(Answer(deal_id=999, key="budget", value=1, updated_by=member.id))
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        sqlite_session.flush()


def test_make_engine_creates_sqlite_folder(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        with engine.connect():
            pass
        assert (tmp_path / "a" / "b" / "x.db").exists()
    finally:
        engine.dispose()


def test_make_engine_uses_psycopg3_for_postgresql_urls() -> None:
    engine = make_engine("postgresql://u@localhost:1/db")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        # Checked on checkout only after sitting idle (tests/test_pool_checks.py), not always.
        assert engine.pool._pre_ping is False
    finally:
        engine.dispose()


def test_transaction_commits_or_rolls_back(engine: Engine) -> None:
    with transaction(engine) as session:
        make_team(session, name="Kept")
    with pytest.raises(RuntimeError), transaction(engine) as session:
        make_team(session, name="Dropped")
        raise RuntimeError("boom")
    with Session(engine) as session:
        assert get_team_by_name(session, name="Kept") is not None
        assert get_team_by_name(session, name="Dropped") is None


# --- column types ---------------------------------------------------------------------------


def test_big_telegram_ids_round_trip(engine: Engine, session: Session) -> None:
    big = 2**52 - 1
    team = make_team(session)
    member = make_member(session, team, telegram_user_id=big)
    session.commit()
    with Session(engine) as fresh:
        found = get_member_by_telegram_id(fresh, telegram_user_id=big)
        assert found is not None and found.id == member.id
        assert found.telegram_user_id == big


def test_money_round_trips_exactly(engine: Engine, session: Session) -> None:
    _, _, deal = _setup(session)
    set_deal_attributes(session, deal_id=deal.id, now=LATER, amount_minor=12345678901)
    session.commit()
    with Session(engine) as fresh:
        stored = get_deal(fresh, deal_id=deal.id)
        assert stored is not None
        assert stored.amount_minor == 12345678901
        assert stored.currency == "CNY"


def test_timestamps_come_back_aware_utc(engine: Engine, session: Session) -> None:
    shanghai = timezone(timedelta(hours=8))
    team = make_team(session, now=datetime(2025, 3, 3, 17, 30, tzinfo=shanghai))
    session.commit()
    with Session(engine) as fresh:
        stored = get_team(fresh, team_id=team.id)
        assert stored is not None
        assert stored.created_at == NOW
        assert stored.created_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(sqlite_session: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        make_team(sqlite_session, now=datetime(2025, 1, 1))


@pytest.mark.parametrize(
    "value",
    [{"a": 1, "nested": {"b": [1, 2]}}, ["x", "y"], True, False, "文本", 0, 42, 1.5, []],
    ids=repr,
)
def test_json_values_round_trip(engine: Engine, session: Session, value: Any) -> None:
    _, member, deal = _setup(session)
    save_answer(session, deal_id=deal.id, key="k", value=value, member_id=member.id, now=LATER)
    session.commit()
    with Session(engine) as fresh:
        stored = get_answers(fresh, deal_id=deal.id)["k"]
        assert stored == value
        assert type(stored) is type(value)


# --- teams ----------------------------------------------------------------------------------


def test_members_lookup_list_and_update(session: Session) -> None:
    old_team, new_team = make_team(session), make_team(session)
    make_member(session, old_team, telegram_user_id=7, role="manager")
    newer = make_member(session, new_team, telegram_user_id=7, now=LATER)
    make_member(session, new_team)
    assert get_member_by_telegram_id(session, telegram_user_id=7) == newer
    update_member(session, member_id=newer.id, active=False, language="zh")
    found = get_member_by_telegram_id(session, telegram_user_id=7)
    assert found is not None and found.team_id == old_team.id
    assert get_member(session, member_id=newer.id).language == "zh"  # type: ignore[union-attr]
    assert get_member_by_telegram_id(session, telegram_user_id=8) is None
    assert [m.role for m in list_members(session, team_id=old_team.id)] == ["manager"]
    assert len(list_members(session, team_id=new_team.id, role="rep")) == 2
    with pytest.raises(TypeError):
        update_member(session, member_id=newer.id, team_id=old_team.id)
    with pytest.raises(NotFoundError):
        update_member(session, member_id=12345, active=False)


def test_telegram_id_is_unique_per_team(session: Session) -> None:
    team = make_team(session)
    make_member(session, team, telegram_user_id=5)
    with pytest.raises(IntegrityError):
        make_member(session, team, telegram_user_id=5)


# --- deals ----------------------------------------------------------------------------------


def test_deal_numbers_count_per_team(session: Session) -> None:
    team_a, team_b = make_team(session), make_team(session)
    rep_a, rep_b = make_member(session, team_a), make_member(session, team_b)
    numbers_a = [make_deal(session, team_a, rep_a).number for _ in range(3)]
    numbers_b = [make_deal(session, team_b, rep_b).number for _ in range(2)]
    session.commit()
    assert numbers_a == [1, 2, 3]
    assert numbers_b == [1, 2]
    found = get_deal_by_number(session, team_id=team_b.id, number=2)
    assert found is not None and found.team_id == team_b.id
    assert get_deal_by_number(session, team_id=team_b.id, number=3) is None
    with pytest.raises(NotFoundError):
        make_deal(session, team_a, rep_a, team_id=999)


def test_concurrent_deal_creation_gets_distinct_numbers(engine: Engine, session: Session) -> None:
    team = make_team(session)
    owner = make_member(session, team)
    session.commit()
    barrier = threading.Barrier(8)
    numbers: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait(timeout=10)
            with transaction(engine) as own:
                deal = create_deal(
                    own,
                    team_id=team.id,
                    owner_id=owner.id,
                    name="Parallel",
                    customer="Acme",
                    stage_id="qualify",
                    currency="CNY",
                    now=NOW,
                )
                numbers.append(deal.number)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(numbers) == list(range(1, 9))


def test_list_deals_filters_and_orders_by_update(session: Session) -> None:
    team = make_team(session)
    alice, bob = make_member(session, team), make_member(session, team)
    first = make_deal(session, team, alice)
    second = make_deal(session, team, bob)
    third = make_deal(session, team, alice)
    set_deal_attributes(session, deal_id=first.id, now=LATER, outside_target=True)
    change_stage(
        session, deal_id=third.id, to_stage="qualify", kind="lost", member_id=alice.id, now=LATER
    )
    assert list_deals(session, team_id=team.id) == [first, second]
    assert list_deals(session, team_id=team.id, owner_id=alice.id) == [first]
    assert list_deals(session, team_id=team.id, statuses=None) == [third, first, second]
    assert list_deals(session, team_id=team.id, statuses=("lost",)) == [third]


def test_set_deal_attributes_sets_only_what_is_passed(engine: Engine, session: Session) -> None:
    _, _, deal = _setup(session)
    set_deal_attributes(
        session,
        deal_id=deal.id,
        now=LATER,
        amount_minor=500,
        expected_close=date(2025, 6, 30),
        outside_target=True,
        outside_target_reason="too small",
    )
    set_deal_attributes(session, deal_id=deal.id, now=LATER, amount_minor=None)
    session.commit()
    with Session(engine) as fresh:
        stored = get_deal(fresh, deal_id=deal.id)
        assert stored is not None
        assert stored.amount_minor is None
        assert stored.expected_close == date(2025, 6, 30)
        assert stored.outside_target is True
        assert stored.outside_target_reason == "too small"
        assert stored.updated_at == LATER
    with pytest.raises(NotFoundError):
        set_deal_attributes(session, deal_id=999, now=LATER, amount_minor=1)


def test_change_stage_records_history_and_status(engine: Engine, session: Session) -> None:
    _, member, deal = _setup(session)
    steps = [
        ("discover", "advance", None, False),
        ("qualify", "back", None, False),
        ("propose", "advance", "manager said so", True),
        ("propose", "lost", "budget cut", False),
        ("propose", "reopen", None, False),
        ("close", "won", None, False),
    ]
    for minutes, (stage, kind, reason, override) in enumerate(steps, start=1):
        change_stage(
            session,
            deal_id=deal.id,
            to_stage=stage,
            kind=kind,
            member_id=member.id,
            now=NOW + timedelta(minutes=minutes),
            reason=reason,
            override=override,
        )
        if kind == "lost":
            assert (deal.status, deal.lost_reason) == ("lost", "budget cut")
        if kind == "reopen":
            assert (deal.status, deal.lost_reason) == ("open", None)
    session.commit()
    with Session(engine) as fresh:
        stored = get_deal(fresh, deal_id=deal.id)
        assert stored is not None
        assert (stored.stage_id, stored.status) == ("close", "won")
        assert stored.updated_at == NOW + timedelta(minutes=6)
        history = list_stage_changes(fresh, deal_id=deal.id)
    assert [(c.from_stage, c.to_stage, c.kind) for c in history] == [
        (None, "qualify", "open"),
        ("qualify", "discover", "advance"),
        ("discover", "qualify", "back"),
        ("qualify", "propose", "advance"),
        ("propose", "propose", "lost"),
        ("propose", "propose", "reopen"),
        ("propose", "close", "won"),
    ]
    assert [c.reason for c in history if c.reason] == ["manager said so", "budget cut"]
    assert [c.override for c in history].count(True) == 1
    with pytest.raises(ValueError):
        change_stage(session, deal_id=deal.id, to_stage="x", kind="jump", member_id=1, now=NOW)


# --- answers --------------------------------------------------------------------------------


def test_save_answer_upserts_and_records_history_only_on_change(
    engine: Engine, session: Session
) -> None:
    _, member, deal = _setup(session)

    def save(value: Any, minutes: int) -> bool:
        now = NOW + timedelta(minutes=minutes)
        return save_answer(
            session, deal_id=deal.id, key="budget", value=value, member_id=member.id, now=now
        )

    assert save(100, 1) is True
    assert save(100, 2) is False
    assert save({"amount": 200}, 3) is True
    assert save({"amount": 200}, 4) is False
    assert save(1, 5) is True
    assert save(True, 6) is True  # JSON true is not 1
    session.commit()
    with Session(engine) as fresh:
        assert get_answers(fresh, deal_id=deal.id) == {"budget": True}
        assert len(fresh.exec(select(Answer)).all()) == 1
        history = list_answer_changes(fresh, deal_id=deal.id, key="budget")
        stored = get_deal(fresh, deal_id=deal.id)
        assert stored is not None and stored.updated_at == NOW + timedelta(minutes=6)
    assert [(c.old_value, c.new_value) for c in history] == [
        (None, 100),
        (100, {"amount": 200}),
        ({"amount": 200}, 1),
        (1, True),
    ]
    assert [c.changed_at for c in history] == [NOW + timedelta(minutes=m) for m in (1, 3, 5, 6)]
    assert all(c.changed_by == member.id for c in history)


def test_delete_answer_records_removal(session: Session) -> None:
    _, member, deal = _setup(session)
    kwargs = {"deal_id": deal.id, "member_id": member.id, "now": LATER}
    save_answer(session, key="a", value=["x"], **kwargs)
    save_answer(session, key="b", value="keep", **kwargs)
    assert delete_answer(session, key="a", **kwargs) is True
    assert delete_answer(session, key="a", **kwargs) is False
    assert save_answer(session, key="b", value=None, **kwargs) is True
    session.commit()
    assert get_answers(session, deal_id=deal.id) == {}
    changes = list_answer_changes(session, deal_id=deal.id)
    assert [(c.key, c.old_value, c.new_value) for c in changes] == [
        ("a", None, ["x"]),
        ("b", None, "keep"),
        ("a", ["x"], None),
        ("b", "keep", None),
    ]


def test_answers_returned_are_copies(session: Session) -> None:
    _, member, deal = _setup(session)
    kwargs = {"deal_id": deal.id, "key": "people", "member_id": member.id, "now": LATER}
    save_answer(session, value=[{"name": "Li"}], **kwargs)
    answers = get_answers(session, deal_id=deal.id)
    answers["people"].append({"name": "Wang"})
    assert save_answer(session, value=answers["people"], **kwargs) is True
    assert len(get_answers(session, deal_id=deal.id)["people"]) == 2


def test_save_answer_for_missing_deal_fails(session: Session) -> None:
    with pytest.raises(NotFoundError):
        save_answer(session, deal_id=404, key="k", value=1, member_id=1, now=NOW)


def test_deleting_a_deal_cascades_to_answers(engine: Engine, session: Session) -> None:
    _, member, deal = _setup(session)
    save_answer(session, deal_id=deal.id, key="k", value=1, member_id=member.id, now=LATER)
    session.commit()
    with transaction(engine) as own:
        own.exec(delete(Deal))
    with Session(engine) as fresh:
        assert fresh.exec(select(Answer)).all() == []


# --- conversations --------------------------------------------------------------------------


def test_conversation_upsert_and_clear(engine: Engine, session: Session) -> None:
    _, member, deal = _setup(session)
    save_conversation(session, member_id=member.id, deal_id=None, question=None, state={}, now=NOW)
    session.commit()
    state = {"mode": "asking", "queue": ["budget", "timeline"], "retries": 0}
    save_conversation(
        session, member_id=member.id, deal_id=deal.id, question="budget", state=state, now=LATER
    )
    session.commit()
    with Session(engine) as fresh:
        conversation = get_conversation(fresh, member_id=member.id)
        assert conversation is not None
        assert (conversation.deal_id, conversation.question) == (deal.id, "budget")
        assert conversation.state == state
        assert conversation.updated_at == LATER
        held, stored = get_member_and_state(fresh, telegram_user_id=member.telegram_user_id)
        assert (held.id, stored) == (member.id, state)
        # Mutating the state that was read and saving it back is stored too.
        conversation.state["retries"] = 1
        save_conversation(
            fresh,
            member_id=member.id,
            deal_id=deal.id,
            question="budget",
            state=conversation.state,
            now=LATER,
        )
        fresh.commit()
    with Session(engine) as fresh:
        conversation = get_conversation(fresh, member_id=member.id)
        assert conversation is not None and conversation.state["retries"] == 1
        assert clear_conversation(fresh, member_id=member.id) is True
        assert clear_conversation(fresh, member_id=member.id) is False
        fresh.commit()
        assert get_conversation(fresh, member_id=member.id) is None


def test_unknown_ids_read_as_none(session: Session) -> None:
    assert get_team(session, team_id=1) is None
    assert get_team_by_name(session, name="nobody") is None
    assert get_member(session, member_id=1) is None
    assert get_deal(session, deal_id=1) is None
    assert get_answers(session, deal_id=1) == {}
    assert get_conversation(session, member_id=1) is None
    assert get_member_and_state(session, telegram_user_id=1) == (None, None)
    assert session.exec(select(Deal)).all() == [] and session.exec(select(Member)).all() == []


def test_claimed_update_ids_are_refused_and_old_ones_forgotten(session: Session) -> None:
    from datetime import timedelta

    from storage.updates import claim_update, forget_old_updates

    assert claim_update(session, update_id=2**40, now=NOW)
    assert not claim_update(session, update_id=2**40, now=NOW)
    session.commit()
    assert forget_old_updates(session, now=NOW + timedelta(days=1)) == 0
    assert forget_old_updates(session, now=NOW + timedelta(days=3)) == 1
    assert claim_update(session, update_id=2**40, now=NOW + timedelta(days=3))


def test_a_claimed_update_goes_with_a_rolled_back_transaction(engine: Engine) -> None:
    """The claim is a savepoint inside the handler's transaction, on SQLite too."""
    from storage.updates import claim_update

    with Session(engine) as session:
        assert claim_update(session, update_id=77, now=NOW)
        session.rollback()
    with Session(engine) as session:
        assert claim_update(session, update_id=77, now=NOW)  # redelivered: handled again
        session.commit()
    with Session(engine) as session:
        assert not claim_update(session, update_id=77, now=NOW)


def test_a_read_only_transaction_holds_up_no_writer_and_postgresql_refuses_its_writes(
    engine: Engine,
) -> None:
    if engine.dialect.name == "postgresql":
        refused = pytest.raises(DBAPIError, match="read-only transaction")
        with refused, transaction(engine, read_only=True) as session:
            create_team(session, name="Sneaky", now=NOW)
        return
    with transaction(engine, read_only=True) as session:
        assert get_team_by_name(session, name="nobody") is None
        other = engine.raw_connection()
        try:
            other.execute("PRAGMA busy_timeout = 0")  # would fail at once if held up
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_wal_checkpoints_run_in_the_background_not_in_a_commit(sqlite_engine: Engine) -> None:
    database = Path(sqlite_engine.url.database)
    stop = checkpoint_in_background(sqlite_engine, every_seconds=0.05)
    try:
        with sqlite_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        before = database.stat().st_mtime_ns
        with transaction(sqlite_engine) as session:
            make_team(session)
        # Only a checkpoint writes the database file itself (commits go to the WAL).
        deadline = time.monotonic() + 10
        while database.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert database.stat().st_mtime_ns != before
    finally:
        stop()
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoints"]


def test_times_read_back_as_utc_even_when_written_by_hand_with_an_offset(engine: Engine) -> None:
    with transaction(engine) as session:
        team = make_team(session)
        session.execute(
            text("UPDATE team SET created_at = :at WHERE id = :id"),
            {"at": "2026-11-27 08:30:00+08:00", "id": team.id},
        )
    with transaction(engine) as session:
        assert get_team(session, team_id=team.id).created_at == datetime(
            2026, 11, 27, 0, 30, tzinfo=UTC
        )


def test_writes_given_the_answers_read_neither_read_again_and_keep_them_current(
    engine: Engine, session: Session
) -> None:
    deal, kwargs = _deal_answered_once(session)
    reads = _counting_answer_reads(engine)
    with transaction(engine) as turn:
        answers = get_answers(turn, deal_id=deal.id)
        assert answers == {"a": 1}
        assert save_answer(turn, key="b", value=2, answers=answers, **kwargs) is True
        assert save_answer(turn, key="a", value=3, answers=answers, **kwargs) is True
        assert save_answer(turn, key="a", value=3, answers=answers, **kwargs) is False
        assert delete_answer(turn, key="b", answers=answers, **kwargs) is True
        assert answers == {"a": 3}
    assert len(reads) == 1
    with transaction(engine) as other:  # without the answers, a writer reads them first
        assert save_answer(other, key="c", value=4, **kwargs) is True
    assert len(reads) == 2
    with Session(engine) as fresh:
        assert get_answers(fresh, deal_id=deal.id) == {"a": 3, "c": 4}
        history = list_answer_changes(fresh, deal_id=deal.id)
    assert [(c.key, c.old_value, c.new_value) for c in history] == [
        ("a", None, 1),
        ("b", None, 2),
        ("a", 1, 3),
        ("b", 2, None),
        ("c", None, 4),
    ]


def test_an_answer_removed_by_another_instance_meanwhile_is_inserted_again(
    engine: Engine, session: Session
) -> None:
    deal, kwargs = _deal_answered_once(session)
    with transaction(engine) as turn:
        answers = get_answers(turn, deal_id=deal.id)
        assert answers == {"a": 1}
        turn.connection().execute(delete(Answer))  # as if another instance had, since the read
        assert save_answer(turn, key="a", value=2, answers=answers, **kwargs) is True
    with Session(engine) as fresh:
        assert get_answers(fresh, deal_id=deal.id) == {"a": 2}


def _deal_answered_once(session: Session) -> tuple[Any, dict[str, Any]]:
    """A deal with answer ``a`` = 1 committed, and the save_answer arguments to write more."""
    _, member, deal = _setup(session)
    kwargs = {"deal_id": deal.id, "member_id": member.id, "now": LATER}
    save_answer(session, key="a", value=1, **kwargs)
    session.commit()
    return deal, kwargs


def _counting_answer_reads(engine: Engine) -> list[str]:
    """The SELECTs of all a deal's answers run on ``engine`` from now on."""
    return _counting_statements(engine, "SELECT answer.key, answer.value FROM answer WHERE")


def _counting_statements(engine: Engine, starting: str = "") -> list[str]:
    """The statements run on ``engine`` from now on (those starting so, quotes left out)."""
    seen: list[str] = []

    @sa_event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany) -> None:
        if " ".join(statement.split()).replace('"', "").startswith(starting):  # "key" is quoted
            seen.append(statement)

    return seen


def test_an_answer_its_history_and_the_deals_touch_are_one_statement_on_postgresql(
    engine: Engine, session: Session
) -> None:
    """One round trip per accepted answer to a server; SQLite writes them one by one."""
    deal, kwargs = _deal_answered_once(session)
    with transaction(engine) as turn:
        held = get_deal(turn, deal_id=deal.id)  # as a turn holds it (the session's are weak)
        answers = get_answers(turn, deal_id=deal.id)
        statements = _counting_statements(engine)
        assert save_answer(turn, key="a", value=2, answers=answers, **kwargs) is True
        assert save_answer(turn, key="b", value=3, answers=answers, **kwargs) is True
        assert delete_answer(turn, key="a", answers=answers, **kwargs) is True
    assert len(statements) == (3 if engine.dialect.name == "postgresql" else 9)
    assert held.updated_at == LATER
    with Session(engine) as fresh:
        assert get_answers(fresh, deal_id=deal.id) == {"b": 3}
        history = list_answer_changes(fresh, deal_id=deal.id)
        assert get_deal(fresh, deal_id=deal.id).updated_at == LATER
    assert [(c.key, c.old_value, c.new_value, c.changed_at) for c in history] == [
        ("a", None, 1, LATER),
        ("a", 1, 2, LATER),
        ("b", None, 3, LATER),
        ("a", 2, None, LATER),
    ]


def test_a_member_read_with_its_state_is_held_until_the_turn_ends(
    engine: Engine, session: Session
) -> None:
    """Two instances' turns of one member take turns, the very first one too (no conversation
    row yet); writes that merely refer to the member do not wait."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite lets one transaction write at a time")
    _, member, deal = _setup(session)
    with transaction(engine) as turn:
        held, state = get_member_and_state(turn, telegram_user_id=member.telegram_user_id)
        assert (held.id, state) == (member.id, None)
        for reader in (get_member_and_state, _start_turn_of(update_id=5)):
            with Session(engine) as other:
                other.connection().exec_driver_sql("SET lock_timeout = '300ms'")
                with pytest.raises(DBAPIError, match="lock timeout"):
                    reader(other, telegram_user_id=member.telegram_user_id)
        with transaction(engine) as referring:  # its foreign key takes KEY SHARE on the member
            referring.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            save_answer(referring, deal_id=deal.id, key="k", value=1, member_id=member.id, now=NOW)


def _start_turn_of(update_id: int | None):
    def start(session: Session, *, telegram_user_id: int):
        return start_turn(session, update_id=update_id, telegram_user_id=telegram_user_id, now=NOW)

    return start


def test_a_turn_starts_with_its_claim_and_the_senders_member_and_state(
    engine: Engine, session: Session
) -> None:
    """One statement on PostgreSQL, whatever is found; what it claims goes with a rollback."""
    _, member, deal = _setup(session)
    state = {"mode": "asking", "queue": ["budget"]}
    save_conversation(
        session, member_id=member.id, deal_id=deal.id, question="budget", state=state, now=NOW
    )
    session.commit()
    user = member.telegram_user_id
    statements = _counting_statements(engine)
    with transaction(engine) as turn:
        start = _start_turn_of(update_id=10)(turn, telegram_user_id=user)
        assert (start.claimed, start.member.id, start.state) == (True, member.id, state)
    work = [s for s in statements if not s.startswith("BEGIN")]  # SQLite's BEGIN IMMEDIATE
    assert len(work) == (1 if engine.dialect.name == "postgresql" else 2)
    with transaction(engine) as turn:  # a redelivery
        start = _start_turn_of(update_id=10)(turn, telegram_user_id=user)
        assert start.claimed is False
        stranger = _start_turn_of(update_id=11)(turn, telegram_user_id=user + 1)
        assert (stranger.claimed, stranger.member, stranger.state) == (True, None, None)
        unclaimed = _start_turn_of(update_id=None)(turn, telegram_user_id=user)
        assert (unclaimed.claimed, unclaimed.member.id) == (True, member.id)
    with Session(engine) as rolled_back:
        assert _start_turn_of(update_id=12)(rolled_back, telegram_user_id=user).claimed
        rolled_back.rollback()
    with transaction(engine) as turn:
        assert _start_turn_of(update_id=11)(turn, telegram_user_id=user).claimed is False
        assert _start_turn_of(update_id=12)(turn, telegram_user_id=user).claimed is True


def test_a_deal_read_on_postgresql_brings_its_answers_in_order(
    engine: Engine, session: Session
) -> None:
    """One statement for both on PostgreSQL; the values are the stored JSON, in order."""
    deal, kwargs = _deal_answered_once(session)
    values = {"b": {"nested": [1, 2.5, True, None]}, "c": "中文 <b>", "d": False, "e": 0}
    for key, value in values.items():
        save_answer(session, key=key, value=value, **kwargs)
    owner = get_member(session, member_id=deal.owner_id)
    bare = make_deal(session, get_team(session, team_id=deal.team_id), owner, name="bare")
    session.commit()
    reads = _counting_answer_reads(engine)
    with transaction(engine) as turn:
        held, answers = get_deal_with_answers(turn, deal_id=deal.id)
        bare_held, no_answers = get_deal_with_answers(turn, deal_id=bare.id)
        assert no_answers == {}
        assert get_deal_with_answers(turn, deal_id=404) is None
    assert [d.name for d in (held, bare_held)] == [deal.name, "bare"]
    assert list(answers.items()) == [("a", 1), *values.items()]
    assert [type(v) for v in answers.values()] == [int, dict, str, bool, int]
    assert len(reads) == (0 if engine.dialect.name == "postgresql" else 2)


def test_a_failed_statement_s_error_lists_no_values(engine: Engine) -> None:
    """SQLAlchemy adds a failed statement's parameters (what a rep typed) to its error, and
    errors end up in log lines; the engines leave them out. (A server may still quote a value
    it could not read, as PostgreSQL does for a bad number.)"""
    with pytest.raises(Exception) as caught, transaction(engine) as session:
        session.execute(text("SELECT :typed FROM no_such_table"), {"typed": "Wang's budget"})
    assert "no_such_table" in str(caught.value) and "Wang" not in str(caught.value)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_sqlite_database_and_its_folder_are_the_owner_s_alone(tmp_path: Path) -> None:
    """Issue 18: the file (every deal, unused invite codes) was readable by every local user."""
    path = tmp_path / "data" / "stagecoach.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with transaction(engine) as session:
            make_team(session)
        assert _mode(path.parent) == 0o700 and _mode(path) == 0o600
        assert [_mode(path.with_name(path.name + end)) for end in ("-wal", "-shm")] == [0o600] * 2
    finally:
        engine.dispose()


def test_a_database_file_readable_by_others_is_tightened(tmp_path: Path, caplog) -> None:
    path = tmp_path / "old.db"
    make_engine(f"sqlite:///{path}").dispose()
    path.chmod(0o644)
    with caplog.at_level(logging.INFO, logger="storage.files"):
        make_engine(f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o600 and "now only by its owner" in caplog.text


# -- invites -----------------------------------------------------------------------------------


def test_an_invite_code_is_kept_only_as_its_hash_and_works_once(session: Session) -> None:
    """Issue 18: anyone who could read the database could read a manager's invite and join."""
    from storage.invites import create_invite, redeem_invite
    from storage.models import Invite

    team = make_team(session)
    code = create_invite(session, team_id=team.id, role="manager", now=NOW)
    session.commit()
    stored = session.exec(select(Invite)).one()
    assert code not in str(stored.model_dump())
    assert redeem_invite(session, code=code + "x", now=NOW) is None
    assert redeem_invite(session, code=code, now=NOW).role == "manager"
    assert redeem_invite(session, code=code, now=NOW) is None  # once


def test_hashing_the_codes_keeps_the_invites_made_before(db_url: str) -> None:
    """Upgraded from the schema before it, an unused invite still works with its code."""
    from storage.invites import redeem_invite

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as connection:
            team_id = connection.execute(
                text("INSERT INTO team (name, created_at) VALUES ('East', :now) RETURNING id"),
                {"now": NOW},
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO invite (code, team_id, role, created_at, expires_at) "
                    "VALUES ('old-code-1', :team, 'rep', :now, :until)"
                ),
                {"team": team_id, "now": NOW, "until": NOW + timedelta(days=7)},
            )
        upgrade(engine)
        with transaction(engine) as session:
            assert redeem_invite(session, code="old-code-1", now=NOW).team_id == team_id
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("invite")}
        assert "code" not in columns and "code_hash" in columns
    finally:
        engine.dispose()


def test_deal_notes_come_to_a_database_of_the_schema_before(db_url: str) -> None:
    """Upgraded from 0007, a deal made before can hold notes, kept word for word."""
    from storage.notes import add_note, notes_of

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        with transaction(engine) as session:
            team = make_team(session)
            member = make_member(session, team)
            deal_id = make_deal(session, team, member).id
        upgrade(engine)
        with transaction(engine) as session:
            add_note(session, deal_id=deal_id, author_id=member.id, text="否，要看<评审>", now=NOW)
            add_note(
                session,
                deal_id=deal_id,
                author_id=member.id,
                text="很需要",
                now=LATER,
                field_key="x",
            )
        with Session(engine) as session:
            assert [n.text for n in notes_of(session, deal_id=deal_id)] == [
                "否，要看<评审>",
                "很需要",
            ]
            assert [n.text for n in notes_of(session, deal_id=deal_id, field_key="x")] == ["很需要"]
    finally:
        engine.dispose()
