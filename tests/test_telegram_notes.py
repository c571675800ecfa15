"""Visit notes end to end: real HTTP from the product's loop to the fake Bot API."""

from __future__ import annotations

import pytest

from storage.db import transaction
from storage.notes import notes_of
from tests.telegram_world import TelegramWorld
from tests.test_telegram import ANN, deal_and_answers, open_question

pytestmark = pytest.mark.full

NOTE = "南京银行 预算大概300万 竞争对手有用友和金蝶 系统效果不好 下周三做技术交流"


@pytest.fixture
async def world(fake, engine):
    world = await TelegramWorld(fake, engine, limiter=None).start()
    world.add_member(world.make_team(), ANN, "Ann")
    yield world
    await world.stop()
    assert fake.spec_violations == []


async def open_deal(world: TelegramWorld) -> None:
    await world.say(ANN, "/new 南京银行 培训平台")
    for label in ("Finance", "Yes", "Yes"):
        await world.press(ANN, label)
    await world.say(ANN, "/cancel")


async def test_note_card_save_all_then_what_is_missing(world, fake):
    await open_deal(world)
    await world.say(ANN, NOTE)
    card = world.last_texts(ANN, 1)
    assert "From your note on #1" in card and "「预算大概300万」" in card
    await world.press(ANN, "Save all")
    deal, answers = deal_and_answers(world)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}
    assert answers["competitors"] == ["用友", "金蝶"] and answers["current_system"] == "works_badly"
    # The card became what was saved, with no live buttons; the next question is one still open.
    [done] = [m for m in fake.sent(ANN) if "Saved 3" in m.get("text", "")]
    assert not done.get("reply_markup")
    assert open_question(world, ANN) not in (None, "budget", "competitors", "current_system")
    with transaction(world.engine) as session:
        assert [n.text for n in notes_of(session, deal_id=deal.id)] == [NOTE]


async def test_a_fix_and_a_drop_on_the_card(world, fake):
    await open_deal(world)
    await world.say(ANN, "南京银行 预算大概300万 竞争对手有用友和金蝶")
    await world.press(ANN, "✏️ 2")  # the budget
    assert "The note said" in world.last_texts(ANN, 1)
    await world.say(ANN, "280万")
    await world.press(ANN, "✖ 1")  # the competitors
    _, answers = deal_and_answers(world)
    assert answers["budget"] == 280_000_000 and "competitors" not in answers
    assert open_question(world, ANN) is not None  # then the stage's open questions


async def test_a_note_that_contradicts_a_saved_answer(world, fake):
    await open_deal(world)
    await world.say(ANN, "/update 1 budget")
    await world.say(ANN, "200万")
    await world.say(ANN, "/cancel")
    await world.say(ANN, "南京银行 预算大概300万")
    assert "→ about CN¥3,000,000.00" in world.last_texts(ANN, 1)
    with pytest.raises(AssertionError):  # nothing new that one tap would save
        world.find_button(ANN, "Save all")
    await world.press(ANN, "✅ 1")
    _, answers = deal_and_answers(world)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}


async def test_a_note_sent_while_a_question_is_open(world, fake):
    await open_deal(world)
    await world.say(ANN, "/update 1 budget")
    await world.say(ANN, "见了郑总，预算大概300万，竞争对手有用友和金蝶，他挺支持我们的")
    assert "From your note" in world.last_texts(ANN, 1)
    await world.press(ANN, "Save all")
    _, answers = deal_and_answers(world)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}
    assert answers["project_team"] == [{"name": "郑总", "attitude": 2}]
