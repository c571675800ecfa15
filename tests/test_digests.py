"""Managers' daily digests end to end: at their local time, once, with a chart, through the
fake Bot API."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlmodel import Session, select

from bot.tg.ratelimit import TelegramRateLimiter
from storage.db import transaction
from storage.deals import get_deal_by_number, set_deal_attributes
from storage.models import DigestRun, Member
from storage.teams import update_member
from tests.fake_bot_api import FakeBotApi
from tests.telegram_world import TelegramWorld
from tests.test_nudges import Clock, open_deal

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

ANN, BOB, MEG = 1001, 1002, 1003
THURSDAY = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 10:00 Shanghai
DIGEST_TIME = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # Friday 08:30 Shanghai


def attach_clock(world: TelegramWorld, clock: Clock) -> None:
    world.clock = clock
    world.app.dialog.clock = clock
    world.ticker = world.application.bot_data["ticker"]
    world.ticker.clock = clock


@pytest.fixture
async def world(fake, engine):
    world = await TelegramWorld(fake, engine, limiter=None).start()
    attach_clock(world, Clock(THURSDAY))
    world.team = world.make_team()
    world.add_member(world.team, ANN, "Ann")
    world.add_member(world.team, BOB, "Bob")
    world.add_member(world.team, MEG, "Meg", role="manager")
    yield world
    await world.stop()
    assert fake.spec_violations == []


async def digest_tick(world: TelegramWorld, at: datetime) -> int:
    world.clock.now = at
    sent = await world.ticker.digest_tick()
    await world.settle()
    return sent


def photos(fake: FakeBotApi, chat_id: int) -> list[dict]:
    return [m for m in fake.sent(chat_id) if "photo" in m]


async def seed(world: TelegramWorld) -> None:
    """Ann: a deal with a budget; then a lost one and a paused one. Bob: nothing."""
    await open_deal(world, ANN, customer="Acme Bank")
    await world.say(ANN, "/update 1 budget")
    await world.say(ANN, "500k")
    await world.say(ANN, "/cancel")
    await open_deal(world, ANN, customer="Globex")
    await world.say(ANN, "/cancel")
    await world.say(ANN, "/lost 2")
    await world.say(ANN, "Went with a competitor")
    await open_deal(world, ANN, customer="Initech")
    await world.say(ANN, "/cancel")
    with transaction(world.engine) as session:
        deal = get_deal_by_number(session, team_id=world.team, number=3)
        set_deal_attributes(
            session,
            deal_id=deal.id,
            now=THURSDAY,
            paused_until=datetime(2027, 3, 1).date(),
            pause_reason="budget",
        )
        first = get_deal_by_number(session, team_id=world.team, number=1)
        set_deal_attributes(
            session, deal_id=first.id, now=THURSDAY, expected_close=datetime(2026, 11, 1).date()
        )


async def test_the_digest_goes_out_at_the_managers_local_time_once(world, fake):
    await seed(world)
    assert await digest_tick(world, DIGEST_TIME - timedelta(minutes=1)) == 0
    assert await digest_tick(world, DIGEST_TIME) == 1
    assert await digest_tick(world, DIGEST_TIME + timedelta(minutes=1)) == 0
    await world.restart()
    attach_clock(world, world.clock)
    assert await digest_tick(world, DIGEST_TIME + timedelta(minutes=2)) == 0  # not twice
    [photo] = photos(fake, MEG)
    image = Image.open(io.BytesIO(fake.files[photo["photo"][-1]["file_id"]]))
    assert image.format == "PNG" and image.size[0] >= 600
    text = world.texts(MEG)[-1]
    assert "Daily digest · Sales East" in text
    assert "Potential opportunity: 2 · CN¥500,000.00 · CN¥50,000.00" in text
    assert "🆕 #1 Training 2027 (Acme Bank, Ann)" in text
    assert "❌ Lost #2 Training 2027 (Globex, Ann) · reason: Went with a competitor" in text
    assert "Paused (1)" in text and "#3 Training 2027 (Initech, Ann)" in text
    assert "Bob · never" in text
    assert "⚠️ #1 Training 2027 (Acme Bank, Ann): Expected close date has passed" in text
    assert "❓ Why must the customer act?" in text
    assert photos(fake, ANN) == []  # reps get no digest


async def test_a_chart_telegram_refuses_is_left_out_and_the_text_goes_once(world, fake, caplog):
    """Issue 18: a refused chart was retried every tick, a traceback each, and the text never
    went out."""
    await seed(world)
    fake.inject_error("sendPhoto", 400, "Bad Request: IMAGE_PROCESS_FAILED", count=10)
    with caplog.at_level(logging.WARNING):
        assert await digest_tick(world, DIGEST_TIME) == 1
        for minutes in (1, 2, 3):
            assert await digest_tick(world, DIGEST_TIME + timedelta(minutes=minutes)) == 0
    assert photos(fake, MEG) == []
    [digest] = [text for text in world.texts(MEG) if "Daily digest · Sales East" in text]
    assert digest.endswith("(The funnel chart could not be shown this time.)")
    assert len(fake.calls("sendPhoto")) == 1
    refused = [r for r in caplog.records if "refused what was sent" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


async def test_a_digest_missed_during_downtime_is_sent_late_once(world, fake):
    await seed(world)
    late = DIGEST_TIME + timedelta(hours=5)  # the bot was down all morning
    assert await digest_tick(world, late) == 1
    assert await digest_tick(world, late + timedelta(hours=1)) == 0
    assert await digest_tick(world, DIGEST_TIME + timedelta(days=1)) == 1  # the next day
    with Session(world.engine) as session:
        runs = session.exec(select(DigestRun).order_by(DigestRun.digest_date)).all()
    assert [(r.digest_date.isoformat(), r.state) for r in runs] == [
        ("2026-11-27", "sent"),
        ("2026-11-28", "sent"),
    ]
    second = world.texts(MEG)[-1]
    assert "No changes since the last digest." in second


async def test_each_manager_gets_it_at_their_own_local_time_and_language(world, fake):
    world.add_member(world.team, 1004, "Max", role="manager")
    with transaction(world.engine) as session:
        max_ = session.exec(select(Member).where(Member.telegram_user_id == 1004)).one()
        update_member(session, member_id=max_.id, timezone="Europe/Berlin", language="zh")
    await seed(world)
    assert await digest_tick(world, DIGEST_TIME) == 1  # Meg, 08:30 in Shanghai
    berlin_morning = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)  # 08:30 in Berlin
    assert await digest_tick(world, berlin_morning) == 1
    assert "每日简报" in world.texts(1004)[-1]


async def test_digest_on_demand_for_managers_only(world, fake):
    await seed(world)
    await world.say(MEG, "/digest")
    assert photos(fake, MEG) and "Daily digest" in world.texts(MEG)[-1]
    await world.say(ANN, "/digest")
    assert world.texts(ANN)[-1] == "Only sales managers can see the team digest."
    assert await digest_tick(world, DIGEST_TIME) == 1  # on demand did not use up the daily one


async def test_a_digest_run_for_many_managers_respects_limits_and_loses_nothing(engine):
    async with FakeBotApi(rate_limits=True) as fake:
        world = await TelegramWorld(fake, engine, limiter=TelegramRateLimiter()).start()
        try:
            attach_clock(world, Clock(THURSDAY))
            team = world.make_team()
            managers = [2000 + n for n in range(12)]
            for user in managers:
                world.add_member(team, user, f"Manager {user}", role="manager")
            fake.fail_next("sendPhoto", status=429, retry_after=1)
            fake.fail_next("sendMessage", status=429, retry_after=1)
            assert await digest_tick(world, DIGEST_TIME) == len(managers)
            for user in managers:
                assert len(photos(fake, user)) == 1
                assert "Daily digest" in world.texts(user)[-1]
        finally:
            await world.stop()
