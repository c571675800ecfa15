"""Issue 13: a reply to a saved answer reaches the rep, across Telegram's failures and restarts.

The bot runs over real HTTP against the fake Bot API; its answers are committed with the
replies to them (the outbox), and what Telegram did not take goes out later, in order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from storage.db import make_engine, transaction, upgrade
from storage.models import OutboxMessage, Team
from storage.outbox import (
    KEEP_DONE,
    NewMessage,
    chats_with_unsent,
    forget_done,
    keep,
    mark_done,
    newest_question,
    take_over_due,
    unsent,
)
from tests.telegram_world import TelegramWorld
from tests.test_telegram import answer, open_deal, open_question

ANN, BOB = 1001, 1002
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
DOWN = 100  # enough refused sends for any test: the fake refuses until cleared


def rows(engine: Engine) -> list[OutboxMessage]:
    with transaction(engine) as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def telegram_down(fake) -> None:
    fake.inject_error("sendMessage", 502, "Bad Gateway", count=DOWN)


def telegram_back(fake) -> None:
    fake.clear_errors("sendMessage")


async def started(fake, engine) -> TelegramWorld:
    world = await TelegramWorld(fake, engine, limiter=None).start()
    world.courier.retry_seconds = (0.05,)
    return world


@pytest.fixture
async def world(fake, engine):
    world = await started(fake, engine)
    team = world.make_team()
    world.add_member(team, ANN, "Ann")
    world.add_member(team, BOB, "Bob")
    yield world
    await world.stop()
    assert fake.spec_violations == []


# -- end to end ------------------------------------------------------------------------------


async def test_a_reply_telegram_did_not_take_goes_out_once_it_is_back(world, fake):
    await world.say(ANN, "/new")
    telegram_down(fake)
    await world.say(ANN, "Acme Bank")  # saved; the next question could not go out
    assert "call this deal" not in world.last_texts(ANN, 1)
    assert world.courier.backlog == {ANN}
    telegram_back(fake)
    await fake.wait_for(lambda: "call this deal" in world.last_texts(ANN, 1), timeout=10)
    await world.settle()
    asked = [text for text in world.texts(ANN) if "call this deal" in text]
    assert len(asked) == 1 and world.courier.backlog == set()
    assert all(row.done_at is not None for row in rows(world.engine))


async def test_replies_kept_across_a_restart_go_out_first_and_in_order(world, fake):
    await world.say(ANN, "/new")
    telegram_down(fake)
    await world.say(ANN, "Acme Bank")
    await world.say(BOB, "/new")
    await world.stop()  # the process ends with both replies unsent
    telegram_back(fake)
    waiting = [row.chat_id for row in rows(world.engine) if row.done_at is None]
    assert waiting == [ANN, BOB]
    await world.start()
    world.courier.retry_seconds = (0.05,)
    await fake.wait_for(lambda: not world.courier.backlog, timeout=10)
    await world.say(ANN, "Training 2027")
    texts = world.texts(ANN)
    # Ann sees the question her saved answer led to, then the one after her next answer.
    deal_name = next(i for i, text in enumerate(texts) if "call this deal" in text)
    industry = next(i for i, text in enumerate(texts) if "industry" in text)
    assert deal_name < industry
    assert "customer" in world.last_texts(BOB, 1).lower()


async def test_newer_replies_wait_behind_older_ones(world, fake):
    await world.say(ANN, "/new")
    telegram_down(fake)
    await world.say(ANN, "Acme Bank")
    telegram_back(fake)
    world.courier.retry_seconds = (3600,)  # no retry now: the next turn must send both
    await world.say(ANN, "Training 2027")
    texts = world.texts(ANN)
    assert "call this deal" in texts[-3] and "Created" in texts[-2] and "industry" in texts[-1]


async def test_a_typed_answer_rewrites_its_question_and_its_buttons_go(world, fake):
    await open_deal(world)
    await world.say(ANN, "/update 1 budget")
    question = fake.sent(ANN)[-1]
    assert "budget" in question["text"] and question.get("reply_markup")  # skip, back, stop
    await world.say(ANN, "500k")
    rewritten = next(m for m in fake.sent(ANN) if m["message_id"] == question["message_id"])
    assert "✔" in rewritten["text"] and "500,000" in rewritten["text"]
    assert not rewritten.get("reply_markup")


async def test_a_rep_who_blocked_the_bot_is_not_sent_to_again(world, fake):
    await world.say(ANN, "/new")
    fake.inject_error("sendMessage", 403, "Forbidden: bot was blocked by the user", count=DOWN)
    await world.say(ANN, "Acme Bank")
    assert world.courier.backlog == set()
    assert all(row.done_at is not None for row in rows(world.engine))


# -- the table -------------------------------------------------------------------------------


def message(chat_id: int, text: str = "hi", **details) -> NewMessage:
    return NewMessage(chat_id=chat_id, body={"text": text, "buttons": []}, **details)


def test_the_outbox_keeps_order_and_takes_over_only_what_is_overdue(session: Session) -> None:
    first = keep(session, [message(ANN, "one"), message(BOB)], now=NOW, lease=LEASE)
    later = keep(session, [message(ANN, "two", asks=True)], now=NOW, lease=LEASE)
    session.commit()
    assert [session.get(OutboxMessage, row_id).chat_id for row_id in first] == [ANN, BOB]
    assert [row.body["text"] for row in unsent(session, chat_id=ANN)] == ["one", "two"]
    assert chats_with_unsent(session) == [ANN, BOB]
    assert take_over_due(session, now=NOW + LEASE / 2, lease=LEASE) == []  # the writer's still
    assert sorted(take_over_due(session, now=NOW + LEASE, lease=LEASE)) == [ANN, BOB]
    assert take_over_due(session, now=NOW + LEASE, lease=LEASE) == []  # taken: not twice
    mark_done(session.connection(), [(first[0], 7), (later[0], 9), (first[1], None)], now=NOW)
    session.commit()
    assert unsent(session, chat_id=ANN) == [] and chats_with_unsent(session) == []
    assert newest_question(session, chat_id=ANN, before_id=later[0] + 1) == 9
    assert newest_question(session, chat_id=ANN, before_id=later[0]) is None  # not a question
    assert forget_done(session, now=NOW + KEEP_DONE) == 0
    assert forget_done(session, now=NOW + KEEP_DONE + timedelta(seconds=1)) == 3


def test_the_outbox_migration_keeps_what_was_there(db_url: str) -> None:
    """Upgraded from the schema before it, a database keeps its rows and gains the table."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0005")
        with transaction(engine) as session:
            session.add(Team(name="Sales East", created_at=NOW))
        upgrade(engine)
        with transaction(engine) as session:
            assert [team.name for team in session.execute(select(Team)).scalars()] == ["Sales East"]
            assert keep(session, [message(ANN)], now=NOW, lease=LEASE)
    finally:
        engine.dispose()


# -- the same text sent again ----------------------------------------------------------------


async def test_an_answer_sent_again_while_its_reply_is_away_is_not_filed_twice(world, fake):
    """Issue 18: the re-sent answer landed in the next field, silently."""
    await world.say(ANN, "/new")
    telegram_down(fake)
    await world.say(ANN, "Acme Bank")  # saved as the customer; "the deal's name?" is stuck
    await world.say(ANN, "Acme Bank")  # Ann tries again: not the deal's name
    telegram_back(fake)
    # The backlog sends the three waiting messages one by one: wait for it to be empty (settle
    # alone may return between two of them).
    await fake.wait_for(lambda: not world.courier.backlog, timeout=10)
    await world.settle()
    texts = world.texts(ANN)
    assert "call this deal" in texts[-3] and "already" in texts[-2] and "call it" in texts[-1]
    await world.say(ANN, "Acme Bank")  # seen the question: now the same text is the name
    assert "Created #1 Acme Bank (Acme Bank)" in world.last_texts(ANN, 2)


async def test_a_third_copy_written_before_the_reply_to_the_second_is_not_an_answer(world, fake):
    """The crash test's skipped question: "sent once more" counts only once it was seen."""
    await world.say(ANN, "/new")
    telegram_down(fake)
    for _ in range(3):  # the customer, then two copies written before any reply arrived
        await world.say(ANN, "Acme Bank")
    telegram_back(fake)
    await fake.wait_for(lambda: not world.courier.backlog, timeout=10)
    await world.settle()
    assert not any("Created" in text for text in world.texts(ANN))
    await world.say(ANN, "Acme Bank")  # seen the question: now the same text is the name
    assert "Created #1 Acme Bank (Acme Bank)" in world.last_texts(ANN, 2)


async def test_copies_of_an_answer_written_before_the_next_question_came_are_not_its_answer(
    world, fake
):
    """The crash test's skipped it_network: two text questions in a row, the same text."""
    await open_deal(world)
    while open_question(world, ANN) != "it_software":
        await answer(world, ANN)
    telegram_down(fake)
    for _ in range(3):  # the answer, then two copies before the next question arrived
        await world.say(ANN, "Head office")
    telegram_back(fake)
    await fake.wait_for(lambda: not world.courier.backlog, timeout=10)
    await world.settle()
    assert open_question(world, ANN) == "it_network"
    await world.say(ANN, "Head office")  # now seen: the same text answers it
    assert open_question(world, ANN) == "current_system"


async def test_the_same_text_for_two_questions_in_a_row_is_two_answers(world, fake):
    await world.say(ANN, "/new")
    await world.say(ANN, "Acme")
    await world.say(ANN, "Acme")  # the deal may be called as its customer
    assert "Created #1 Acme (Acme)" in world.last_texts(ANN, 2)
