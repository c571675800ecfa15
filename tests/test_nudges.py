"""Nudges end to end with controlled time: planned by the dialog, sent by scheduler ticks
through the fake Bot API, snoozed and muted by buttons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.tg.application import build_ticker
from bot.tg.delivery import Delivery
from flows.i18n import t
from storage.db import transaction
from storage.deals import get_deal_by_number, set_deal_attributes
from storage.models import Member, Nudge, NudgeMute
from storage.nudges import schedule_nudge
from storage.teams import update_member
from tests.fake_bot_api import FakeBotApi
from tests.telegram_world import TelegramWorld

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

ANN = 1001
# Thursday 2026-11-26, 10:00 in Shanghai.
THURSDAY = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def world(fake, engine):
    world = await TelegramWorld(fake, engine, limiter=None).start()
    world.clock = Clock(THURSDAY)
    world.app.dialog.clock = world.clock
    world.ticker = world.application.bot_data["ticker"]
    world.ticker.clock = world.clock
    world.team = world.make_team()
    world.add_member(world.team, ANN, "Ann")
    yield world
    await world.stop()
    assert fake.spec_violations == []


async def tick(world: TelegramWorld, at: datetime) -> int:
    world.clock.now = at
    sent = await world.ticker.nudge_tick()
    await world.settle()
    return sent


async def open_deal(world: TelegramWorld, user_id: int = ANN, customer: str = "Acme Bank"):
    await world.say(user_id, "/new")
    await world.say(user_id, customer)
    await world.say(user_id, "Training 2027")
    for label in ("Finance", "Yes", "Yes"):
        await world.press(user_id, label)


def nudges(world: TelegramWorld) -> list[Nudge]:
    with Session(world.engine) as session:
        return list(session.exec(select(Nudge).order_by(Nudge.id)))


def reminder_texts(world: TelegramWorld, chat_id: int = ANN) -> list[str]:
    title = t("en", "nudge.title").replace("<b>", "").replace("</b>", "")
    return [text for text in world.texts(chat_id) if text.startswith(title)]


def set_timezone(world: TelegramWorld, user_id: int, zone: str) -> None:
    with transaction(world.engine) as session:
        member = session.exec(select(Member).where(Member.telegram_user_id == user_id)).one()
        update_member(session, member_id=member.id, timezone=zone)


async def test_a_run_left_with_gaps_is_followed_up_the_next_working_morning(world):
    await open_deal(world)
    await world.say(ANN, "Head office")
    await world.press(ANN, "Stop")
    [nudge] = nudges(world)
    assert nudge.kind == "gap"
    assert nudge.due_at == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # Fri 09:00 Shanghai
    assert await tick(world, THURSDAY + timedelta(hours=3)) == 0
    assert await tick(world, datetime(2026, 11, 27, 1, 0, tzinfo=UTC)) == 1
    [text] = reminder_texts(world)
    assert "#1 Training 2027 (Acme Bank)" in text and "still open" in text
    labels = [
        b["text"]
        for row in world.fake.sent(ANN)[-1]["reply_markup"]["inline_keyboard"]
        for b in row
    ]
    assert labels == ["#1 Update now", "#1 Not relevant", "#1 Tomorrow", "#1 In a week"]
    await world.press(ANN, "Update now")
    assert "What is the customer's background?" not in world.last_texts(ANN, 1)  # answered
    assert world.last_texts(ANN, 1).startswith("#1 Training 2027")


async def test_friday_evening_follow_up_waits_for_monday(world):
    world.clock.now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # Friday 18:00 Shanghai
    await open_deal(world)
    await world.say(ANN, "/cancel")
    [nudge] = nudges(world)
    assert nudge.due_at == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday 09:00


async def test_a_gap_closed_before_the_nudge_fires_is_dropped(world):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    with transaction(world.engine) as session:
        deal = get_deal_by_number(session, team_id=world.team, number=1)
        set_deal_attributes(session, deal_id=deal.id, now=THURSDAY, paused_until=None)
    # The rep closes every gap of the stage (here: the run walked to its end) before Friday.
    from tests.test_telegram import walk

    await world.say(ANN, "/update 1")
    await walk(world, ANN)
    assert [n.state for n in nudges(world)] == ["dropped"]  # replaced by the finished run
    schedule_direct(world, kind="gap", due=THURSDAY)
    assert await tick(world, THURSDAY + timedelta(hours=1)) == 0
    assert nudges(world)[-1].state == "dropped"
    assert reminder_texts(world) == []


def schedule_direct(world, *, kind: str, due: datetime, number: int = 1, key: str = "") -> None:
    with transaction(world.engine) as session:
        deal = get_deal_by_number(session, team_id=world.team, number=number)
        schedule_nudge(
            session,
            member_id=deal.owner_id,
            deal_id=deal.id,
            kind=kind,
            due_at=due,
            now=due,
            key=key,
        )


async def test_quiet_hours_in_shanghai(world):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    late = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # Friday 22:00 Shanghai
    schedule_direct(world, kind="gap", due=late)
    assert await tick(world, late) == 0
    assert nudges(world)[-1].due_at == datetime(2026, 11, 28, 0, 30, tzinfo=UTC)  # 08:30
    assert await tick(world, datetime(2026, 11, 28, 0, 29, tzinfo=UTC)) == 0
    assert await tick(world, datetime(2026, 11, 28, 0, 31, tzinfo=UTC)) == 1


async def test_quiet_hours_across_the_daylight_saving_change_in_berlin(world):
    set_timezone(world, ANN, "Europe/Berlin")
    world.clock.now = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
    await open_deal(world)
    await world.say(ANN, "/cancel")
    evening = datetime(2026, 3, 28, 20, 30, tzinfo=UTC)  # Sat 21:30 CET
    schedule_direct(world, kind="gap", due=evening)
    assert await tick(world, evening) == 0
    # Clocks go forward on Sunday 29 March: 08:30 CEST is 06:30 UTC (it was 07:30 the day before).
    assert nudges(world)[-1].due_at == datetime(2026, 3, 29, 6, 30, tzinfo=UTC)
    assert await tick(world, datetime(2026, 3, 29, 6, 29, tzinfo=UTC)) == 0
    assert await tick(world, datetime(2026, 3, 29, 6, 31, tzinfo=UTC)) == 1


async def test_the_daily_cap_batches_due_nudges_and_holds_the_rest(world):
    for n in range(5):
        await open_deal(world, customer=f"Customer {n}")
        await world.say(ANN, "/cancel")
    for n in range(1, 6):
        schedule_direct(world, kind="gap", due=THURSDAY, number=n)
    assert await tick(world, THURSDAY + timedelta(minutes=5)) == 1
    [batch] = reminder_texts(world)
    assert batch.count("still open") == 3
    assert await tick(world, THURSDAY + timedelta(hours=2)) == 0  # cap reached today
    friday = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert await tick(world, friday) == 1
    assert reminder_texts(world)[-1].count("still open") == 2


async def test_snooze_and_not_relevant(world):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    schedule_direct(world, kind="gap", due=THURSDAY)
    assert await tick(world, THURSDAY + timedelta(minutes=1)) == 1
    await world.press(ANN, "Tomorrow")
    assert world.fake.answered_callbacks[-1]["text"].startswith("OK, I'll remind you")
    pending = [n for n in nudges(world) if n.state == "pending" and n.kind == "gap"]
    assert [n.due_at for n in pending] == [datetime(2026, 11, 27, 1, 0, tzinfo=UTC)]
    assert await tick(world, datetime(2026, 11, 27, 1, 1, tzinfo=UTC)) == 1
    await world.press(ANN, "Not relevant")
    with Session(world.engine) as session:
        assert session.exec(select(NudgeMute)).one().kind == "gap"
    schedule_direct(world, kind="gap", due=datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    assert await tick(world, datetime(2026, 11, 28, 2, 0, tzinfo=UTC)) == 0


async def test_overdue_nudges_after_downtime_go_out_once(world):
    for n in range(2):
        await open_deal(world, customer=f"Customer {n}")
        await world.say(ANN, "/cancel")
    with transaction(world.engine) as session:  # deal 2 was last touched two months ago
        deal = get_deal_by_number(session, team_id=world.team, number=2)
        deal.updated_at = THURSDAY - timedelta(days=60)
    schedule_direct(world, kind="gap", due=THURSDAY - timedelta(days=3), number=1)
    schedule_direct(world, kind="stale", due=THURSDAY - timedelta(days=2), number=2)
    back = THURSDAY + timedelta(hours=1)
    assert await tick(world, back) == 1
    assert await tick(world, back + timedelta(minutes=1)) == 0
    assert await tick(world, back + timedelta(minutes=2)) == 0
    [text] = reminder_texts(world)
    assert "#1 Training 2027 (Customer 0)" in text
    assert "#2 Training 2027 (Customer 1)" in text and "no update for 60 days" in text
    assert sorted(n.kind for n in nudges(world) if n.state == "sent") == ["gap", "stale"]


async def test_a_deal_at_a_stage_the_playbook_dropped_does_not_block_other_nudges(world):
    for n in range(2):
        await open_deal(world, customer=f"Customer {n}")
        await world.say(ANN, "/cancel")
    with transaction(world.engine) as session:
        get_deal_by_number(session, team_id=world.team, number=1).stage_id = "retired_stage"
    schedule_direct(world, kind="gap", due=THURSDAY, number=1)
    schedule_direct(world, kind="gap", due=THURSDAY, number=2)
    assert await tick(world, THURSDAY + timedelta(minutes=1)) == 1
    [text] = reminder_texts(world)
    assert "Customer 1" in text and "Customer 0" not in text


async def test_a_restart_between_scheduling_and_sending_loses_nothing(world):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    await world.restart()
    world.ticker = world.application.bot_data["ticker"]
    world.ticker.clock = world.clock
    assert await tick(world, datetime(2026, 11, 27, 1, 0, tzinfo=UTC)) == 1


async def test_stale_deals_are_found_and_paused_deals_are_left_alone(world):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    await open_deal(world, customer="Globex")
    await world.say(ANN, "/cancel")
    await world.say(ANN, "/pause 2")
    await world.say(ANN, "Budget cycle starts in March")
    await world.say(ANN, "2027-03-01")
    assert "paused until" in world.last_texts(ANN, 1)
    month_later = THURSDAY + timedelta(days=40)
    world.clock.now = month_later
    assert await world.ticker.plan_stale() == 1  # only the unpaused deal
    await tick(world, month_later)
    [text] = reminder_texts(world)
    assert "#1" in text and "no update for 40 days" in text and "#2" not in text
    resume_day = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)
    assert await tick(world, resume_day) == 1
    assert "paused until today" in reminder_texts(world)[-1]
    with Session(world.engine) as session:
        deal = get_deal_by_number(session, team_id=world.team, number=2)
        assert deal.paused_until is None


async def test_date_reminders_three_days_and_one_day_before(world):
    await open_deal(world)
    await world.say(ANN, "/update 1 expected_close")
    # expected_close is not a reminder field: nothing planned.
    await world.say(ANN, "2026-12-20")
    assert [n for n in nudges(world) if n.kind == "date"] == []
    await world.say(ANN, "/update 1 bid_date")
    await world.say(ANN, "2026-12-10")
    [first] = [n for n in nudges(world) if n.kind == "date"]
    assert first.key == "bid_date" and first.due_at == datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    assert await tick(world, first.due_at) == 1
    assert "in 3 days" in reminder_texts(world)[-1]
    [second] = [n for n in nudges(world) if n.kind == "date" and n.state == "pending"]
    assert second.due_at == datetime(2026, 12, 9, 1, 0, tzinfo=UTC)
    assert await tick(world, second.due_at) == 1
    assert "tomorrow" in reminder_texts(world)[-1]


async def test_two_instances_on_postgresql_send_each_of_1000_nudges_once(engine, request):
    if engine.dialect.name != "postgresql":
        pytest.skip("the concurrency guarantee under test is PostgreSQL's SKIP LOCKED")
    async with FakeBotApi(rate_limits=False) as fake:
        world = await TelegramWorld(fake, engine, limiter=None).start()
        try:
            due = THURSDAY
            team = world.make_team()
            with transaction(engine) as session:
                from storage.deals import create_deal
                from storage.teams import add_member

                for n in range(1000):
                    member = add_member(
                        session,
                        team_id=team,
                        telegram_user_id=50_000 + n,
                        display_name=f"Rep {n}",
                        role="rep",
                        language="en",
                        timezone="Asia/Shanghai",
                        now=due,
                    )
                    deal = create_deal(
                        session,
                        team_id=team,
                        owner_id=member.id,
                        name=f"Deal {n}",
                        customer="C",
                        stage_id="potential",
                        currency="CNY",
                        now=due - timedelta(days=90),
                    )
                    session.add(
                        Nudge(
                            member_id=member.id,
                            deal_id=deal.id,
                            kind="stale",
                            due_at=due,
                            created_at=due,
                        )
                    )
            tickers = []
            for _ in range(2):
                bot = world.application.bot
                delivery = Delivery(
                    bot,
                    world.application.bot_data["adapter"]._migrated,
                    world.application.bot_data["adapter"]._removed,
                )
                ticker = build_ticker(world.app, delivery)
                ticker.clock = lambda: due + timedelta(minutes=1)
                tickers.append(ticker)
            # Distinct instance names, as two processes would have.
            tickers[0].nudges.instance, tickers[1].nudges.instance = "one", "two"
            totals = [0, 0]

            async def run(index: int) -> None:
                for _ in range(4):
                    totals[index] += await tickers[index].nudge_tick()

            await asyncio.gather(run(0), run(1))
            await world.settle()
            chats = [chat for chat in range(50_000, 51_000) if reminder_texts(world, chat)]
            assert len(chats) == 1000
            assert all(len(reminder_texts(world, chat)) == 1 for chat in chats)
            assert sum(totals) == 1000 and min(totals) > 0  # both instances took part
        finally:
            await world.stop()
