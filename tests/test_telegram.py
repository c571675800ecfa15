"""StageCoach end to end over HTTP: a real PTB Application against the fake Bot API."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from flows import engine as flow
from flows.i18n import t
from storage.answers import get_answers
from storage.db import transaction
from storage.deals import get_deal_by_number, list_stage_changes
from storage.groups import get_group_by_chat
from storage.models import Deal
from tests.dialog_driver import PLAYBOOK
from tests.fake_bot_api import BOT_USERNAME, FakeBotApi
from tests.telegram_world import TelegramWorld

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

ANN, BOB, MEG, STRANGER = 1001, 1002, 1003, 1999
GROUP = -100500
TYPED = {
    "text": "Head office training centre",
    "number": "120",
    "money": "500k",
    "date": "next Friday",
    "list": "Acme, Globex",
}


@pytest.fixture
async def world(fake, engine):
    world = await TelegramWorld(fake, engine, limiter=None).start()
    team = world.make_team()
    world.add_member(team, ANN, "Ann")
    world.add_member(team, BOB, "Bob")
    world.add_member(team, MEG, "Meg", role="manager")
    yield world
    await world.stop()
    assert fake.spec_violations == []


def deal_and_answers(world: TelegramWorld, number: int = 1) -> tuple[Deal, dict]:
    with transaction(world.engine) as session:
        deal = get_deal_by_number(session, team_id=1, number=number)
        return deal, (get_answers(session, deal_id=deal.id) if deal else {})


def open_question(world: TelegramWorld, user_id: int) -> str | None:
    from storage.conversations import get_conversation
    from storage.teams import get_member_by_telegram_id

    with transaction(world.engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=user_id)
        conversation = get_conversation(session, member_id=member.id)
        return conversation.question if conversation else None


async def open_deal(world: TelegramWorld, user_id: int = ANN, industry: str = "Finance"):
    await world.say(user_id, "/new")
    await world.say(user_id, "Acme Bank")
    await world.say(user_id, "Training 2027")
    await world.press(user_id, industry)
    await world.press(user_id, "Yes")
    await world.press(user_id, "Yes")


async def answer(world: TelegramWorld, user_id: int) -> str:
    """Answer the open question by typing or by pressing, as a rep on a phone would."""
    key = open_question(world, user_id)
    question = flow.question_for(PLAYBOOK, key)
    if question.item is not None:
        await world.press(user_id, "Yes")
        return key
    spec = question.spec
    if spec.type == "choice":
        await world.press(user_id, spec.options[0].label["en"])
    elif spec.type == "yesno":
        await world.press(user_id, "Yes")
    elif spec.type == "stakeholder":
        for step in ("Wang", "CIO"):
            await world.say(user_id, step)
        for label in ("Decision maker", "High", "+2", "No"):
            await world.press(user_id, label)
    else:
        await world.say(user_id, TYPED[spec.type])
    return key


async def walk(world: TelegramWorld, user_id: int) -> list[str]:
    asked = []
    while open_question(world, user_id) is not None:
        asked.append(await answer(world, user_id))
        assert len(asked) < 40
    return asked


async def test_commands_are_registered_per_scope_and_language(world, fake):
    scopes = {scope for scope, _ in fake.commands}
    assert {"all_private_chats", "all_group_chats"} <= scopes
    private_en = [c["command"] for c in fake.commands[("all_private_chats", "en")]]
    assert {"new", "update", "gaps", "advance"} <= set(private_en)
    assert fake.commands[("all_private_chats", "zh")][0]["description"] == t("zh", "commands.new")
    group_zh = [c["command"] for c in fake.commands[("all_group_chats", "zh")]]
    assert group_zh == ["setgroup", "unsetgroup", "help"]


async def test_joining_with_an_invite_and_a_managers_invite_link(world, fake):
    code = world.invite(team_id=1)
    await world.say(4242, f"/start {code}", first_name="Cat", language_code="zh-hans")
    assert "欢迎加入 Sales East" in world.last_texts(4242)
    await world.say(4242, f"/start {code}")  # a used code does nothing more
    await world.say(4343, f"/start {code}", language_code="en")
    assert t("en", "team.invite_invalid") in world.last_texts(4343, 1)

    await world.say(MEG, "/invite")
    assert f"https://t.me/{BOT_USERNAME}?start=" in world.last_texts(MEG, 1)
    await world.say(ANN, "/invite")
    assert t("en", "team.managers_only") in world.last_texts(ANN, 1)


async def test_someone_who_has_not_joined_gets_one_polite_message_and_nothing_else(world, fake):
    await open_deal(world)
    for text in ("/start", "/deals", "/gaps 1", "hello", "/start wrongcode"):
        await world.say(STRANGER, text)
    texts = world.texts(STRANGER)
    assert all("Acme" not in text and "Training" not in text for text in texts)
    assert texts[0] == t("en", "dialog.not_a_member")


async def test_a_rep_walks_stage_two_by_text_and_buttons(world, fake):
    await open_deal(world)
    assert "is in our target group" in world.last_texts(ANN)
    asked = await walk(world, ANN)
    required = [f.id for f in PLAYBOOK.stage("potential").fields if f.required]
    assert set(required) <= set(asked)
    deal, answers = deal_and_answers(world)
    assert flow.gap_report(PLAYBOOK, "potential", answers).closed
    assert answers["budget"] == 50_000_000
    card = world.last_texts(ANN, 1)
    assert "Training 2027" in card and "Ready for" in card and "Coaching questions" in card
    # Every answered button question was rewritten to show its answer, with no live buttons.
    answered = [m for m in fake.sent(ANN) if "✔" in m.get("text", "")]
    assert answered and all(not m.get("reply_markup") for m in answered)


async def test_a_press_is_acknowledged_while_the_next_question_goes_out(world, fake):
    await world.say(ANN, "/new")
    await world.say(ANN, "Acme Bank")
    await world.say(ANN, "Training 2027")
    asked = len(world.texts(ANN))
    held = [fake.hold("answerCallbackQuery"), fake.hold("editMessageText")]
    message, button = world.find_button(ANN, "Finance")
    fake.callback(ANN, button["callback_data"], message["message_id"])
    # The next question is sent while the toast and the rewrite are still on their way.
    await fake.wait_for(lambda: len(world.texts(ANN)) > asked, timeout=5)
    assert not fake.answered_callbacks
    for gate in held:
        gate.set()
    await world.settle()
    assert fake.answered_callbacks
    assert "✔" in world.texts(ANN)[asked - 1] and "Finance" in world.texts(ANN)[asked - 1]


async def test_a_wrong_answer_is_explained_and_asked_again(world, fake):
    await open_deal(world)
    await world.say(ANN, "/update 1 budget")
    await world.say(ANN, "a lot of money")
    texts = world.last_texts(ANN, 2)
    assert "doesn't look like an amount" in texts and "What budget" in texts
    assert open_question(world, ANN) == "budget"


async def test_the_gap_report(world, fake):
    await open_deal(world)
    await world.say(ANN, "/cancel")
    await world.say(ANN, "/gaps 1")
    report = world.last_texts(ANN, 1)
    gaps = flow.gap_report(PLAYBOOK, "potential", deal_and_answers(world)[1])
    assert f"{gaps.open_count} open:" in report and "Coaching questions" in report


async def test_blocked_and_successful_advance_with_the_group_message(world, fake):
    fake.register_chat(GROUP, "group", "Sales East team")
    await world.say(MEG, "/setgroup", chat_id=GROUP, chat_type="group")
    assert "linked to Sales East" in world.last_texts(GROUP, 1)
    await open_deal(world)
    group_before = len(world.texts(GROUP))
    await world.say(ANN, "/cancel")
    await world.say(ANN, "/advance 1")
    assert "can't move to" in world.last_texts(ANN, 1)
    await world.say(ANN, "/update 1")
    await walk(world, ANN)
    await world.say(ANN, "/advance 1")
    sent_before = len(fake.sent(ANN))
    await world.press(ANN, "→")
    deal, _ = deal_and_answers(world)
    assert deal.stage_id == "intent"
    # The confirmation is rewritten into the outcome, with the next step; said once.
    assert len(fake.sent(ANN)) == sent_before
    [moved] = [m for m in fake.sent(ANN) if "is now at" in m.get("text", "")]
    assert moved["reply_markup"]["inline_keyboard"][0][0]["text"] == "Fill in now"
    posts = world.texts(GROUP)[group_before:]
    assert len(posts) == 1
    assert "Ann" in posts[0] and "Training 2027" in posts[0] and "→" in posts[0]
    assert "50万" in posts[0]


async def test_a_manager_forces_a_blocked_advance_with_a_reason(world, fake):
    await open_deal(world)
    await world.say(MEG, "/advance 1")
    await world.press(MEG, "Force it")
    await world.say(MEG, "Customer signed a letter of intent")
    deal, _ = deal_and_answers(world)
    assert deal.stage_id == "intent"
    with transaction(world.engine) as session:
        change = list_stage_changes(session, deal_id=deal.id)[-1]
    assert change.override and change.reason == "Customer signed a letter of intent"


async def test_a_reps_exception_request_is_decided_once_by_a_manager(world, fake):
    world.add_member(1, 1004, "Max", role="manager")
    await open_deal(world)
    await world.say(ANN, "/cancel")
    await world.say(ANN, "/advance 1")
    await world.press(ANN, "Ask a manager")
    await world.say(ANN, "Budget is approved, paperwork follows")
    request = world.last_texts(MEG, 1)
    assert "Exception request" in request and "Budget is approved" in request
    assert "Exception request" in world.last_texts(1004, 1)
    await world.press(MEG, "Approve")
    await world.press(1004, "Reject")  # too late: the first decision counts
    assert fake.answered_callbacks[-1].get("text") == t("en", "override.already_decided")
    deal, _ = deal_and_answers(world)
    assert deal.stage_id == "intent"
    assert "Meg approved the exception" in world.last_texts(ANN, 1)


async def test_a_stale_button_answers_with_a_notice_and_changes_nothing(world, fake):
    await world.say(ANN, "/new")
    await world.say(ANN, "Acme Bank")
    await world.say(ANN, "Training 2027")
    old_message, old_button = world.find_button(ANN, "Other")
    await world.press(ANN, "Finance")
    _, before = deal_and_answers(world)
    await world.press_data(ANN, old_button["callback_data"], old_message["message_id"])
    assert fake.answered_callbacks[-1].get("text") == t("en", "dialog.old_button")
    assert deal_and_answers(world)[1] == before


async def test_a_forged_callback_for_someone_elses_deal_is_refused_and_logged(world, fake, caplog):
    await open_deal(world)
    deal, before = deal_and_answers(world)
    await world.say(BOB, "/help")
    message = fake.sent(BOB)[-1]
    with caplog.at_level(logging.WARNING):
        for data in (f"a:{deal.id}:1:2", f"e:{deal.id}:budget", f"f:{deal.id}:1:2", "r:1:1"):
            await world.press_data(BOB, data, message["message_id"])
    assert "may not see" in caplog.text
    after, answers = deal_and_answers(world)
    assert answers == before and after.stage_id == deal.stage_id
    assert all("Acme" not in text for text in world.texts(BOB))


async def test_a_restart_in_the_middle_of_a_question_continues_there(world, fake):
    await open_deal(world)
    await world.say(ANN, "Head office")
    waiting = open_question(world, ANN)
    await world.restart()
    await world.say(ANN, "/help")
    assert PLAYBOOK.field(waiting).question["en"] in world.last_texts(ANN, 1)
    await answer(world, ANN)
    assert waiting in deal_and_answers(world)[1]


async def test_a_group_that_becomes_a_supergroup_keeps_getting_posts(world, fake):
    fake.register_chat(GROUP, "group", "Sales East team")
    await world.say(MEG, "/setgroup", chat_id=GROUP, chat_type="group")
    fake.migrate_group(GROUP, -1009999)
    await world.settle()
    await open_deal(world)
    assert any("Training 2027" in text for text in world.texts(-1009999))


async def test_a_bot_removed_from_its_group_stops_posting_and_managers_are_told_once(world, fake):
    fake.register_chat(GROUP, "group", "Sales East team")
    await world.say(MEG, "/setgroup", chat_id=GROUP, chat_type="group")
    fake.bot_removed(GROUP, by_user_id=MEG)
    await world.settle()
    fake.bot_removed(GROUP, by_user_id=MEG)
    await world.settle()
    told = [text for text in world.texts(MEG) if "removed from the group" in text]
    assert len(told) == 1
    posts_before = len(world.texts(GROUP))
    await open_deal(world)
    assert len(world.texts(GROUP)) == posts_before


async def test_a_group_stays_its_team_s_until_a_manager_of_that_team_unlinks_it(world, fake):
    """Issue 18: a group whose bot was removed could be linked by another team's manager,
    which silently deleted the first team's link."""
    west = world.make_team("Sales West")
    rival = 1004
    world.add_member(west, rival, "Rita", role="manager")
    fake.register_chat(GROUP, "group", "Sales East team")
    await world.say(MEG, "/setgroup", chat_id=GROUP, chat_type="group")
    fake.bot_removed(GROUP, by_user_id=MEG)
    await world.settle()
    fake.chats[GROUP].bot_status = "member"  # the bot is added back to the group
    await world.say(rival, "/setgroup", chat_id=GROUP, chat_type="group")
    assert "linked to another team" in world.last_texts(GROUP, 1)
    await world.say(ANN, "/unsetgroup", chat_id=GROUP, chat_type="group")
    assert "Only a sales manager" in world.last_texts(GROUP, 1)
    await world.say(rival, "/unsetgroup", chat_id=GROUP, chat_type="group")
    assert "not linked to your team" in world.last_texts(GROUP, 1)
    with transaction(world.engine) as session:
        assert get_group_by_chat(session, chat_id=GROUP).team_id == 1  # still Sales East's
    await world.say(MEG, "/unsetgroup", chat_id=GROUP, chat_type="group")
    assert "no longer linked to Sales East" in world.last_texts(GROUP, 1)
    await world.say(rival, "/setgroup", chat_id=GROUP, chat_type="group")
    assert "linked to Sales West" in world.last_texts(GROUP, 1)


async def test_deal_commands_in_a_group_point_to_the_private_chat(world, fake):
    fake.register_chat(GROUP, "group", "Sales East team")
    await open_deal(world)
    await world.say(ANN, "/deals", chat_id=GROUP, chat_type="group")
    await world.say(ANN, "what a day", chat_id=GROUP, chat_type="group")
    texts = world.texts(GROUP)
    assert len(texts) == 1 and f"https://t.me/{BOT_USERNAME}" in texts[0]
    assert "Acme" not in texts[0]


async def test_long_replies_are_split_and_user_text_is_escaped(world, fake):
    await world.say(ANN, "/new")
    await world.say(ANN, "<b>Evil</b> & Co")
    await world.say(ANN, "x" * 120)
    for n in range(40):
        await world.say(ANN, "/new")
        await world.say(ANN, f"Customer {n} " + "y" * 100)
        await world.say(ANN, f"Deal {n} " + "z" * 110)
    await world.say(ANN, "/deals")
    listing = [m["text"] for m in fake.sent(ANN)[-4:]]
    assert sum("Customer" in text for text in listing) >= 2  # more than one message
    assert any("<b>Evil</b> & Co" in m.get("text", "") for m in fake.sent(ANN))


async def test_non_text_messages_and_edits_get_a_hint(world, fake):
    await open_deal(world)
    waiting = open_question(world, ANN)
    fake.add_update(
        {
            "message": {
                **fake.sent(ANN)[-1],
                "from": {"id": ANN, "is_bot": False, "first_name": "Ann"},
                "text": None,
                "sticker": {
                    "file_id": "s",
                    "file_unique_id": "s",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        }
    )
    await world.settle()
    assert t("en", "dialog.text_only") in world.last_texts(ANN, 2)
    assert open_question(world, ANN) == waiting


async def test_a_429_is_waited_out_and_nothing_is_lost(engine):
    from bot.tg.ratelimit import TelegramRateLimiter

    async with FakeBotApi(rate_limits=True) as fake:
        world = await TelegramWorld(fake, engine, limiter=TelegramRateLimiter()).start()
        try:
            world.add_member(world.make_team(), ANN, "Ann")
            fake.fail_next("sendMessage", status=429, retry_after=1)
            await world.say(ANN, "/help")
            await world.say(ANN, "/new")
            await world.say(ANN, "Acme Bank")
            await world.say(ANN, "Training 2027")
            await fake.wait_for(lambda: any("Created #1" in text for text in world.texts(ANN)))
            await world.settle()
            assert world.texts(ANN)[0].startswith("StageCoach")
            assert any("What shall we call" in text for text in world.texts(ANN))
            attempts = [r for r in fake.requests if r[0] == "sendMessage"]
            # Every message arrived, and one send was made twice: the 429 and its retry.
            assert len(attempts) == len(world.texts(ANN)) + 1
        finally:
            await world.stop()


async def test_a_failing_delivery_step_neither_stops_the_others_nor_escapes(caplog):
    from bot.tg.delivery import side_by_side

    done = []

    async def fails():
        raise TypeError("an inaccessible message cannot be edited")

    async def works():
        await asyncio.sleep(0.01)
        done.append("sent")

    await side_by_side(fails(), works())
    assert done == ["sent"]
    assert "inaccessible message" in caplog.text


def test_a_running_bot_hides_its_long_lived_objects_from_the_collector():
    import gc

    from bot.tg.application import freeze_long_lived_objects

    before = gc.get_freeze_count()
    try:
        freeze_long_lived_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # the test process keeps collecting as usual


async def test_a_team_digest_is_built_off_the_event_loop_on_a_server_database(world, fake):
    """A whole team's digest takes seconds for a big team: on PostgreSQL it must not hold up
    the loop (other chats' turns and sending); on SQLite it runs inline like every turn."""
    dialog = world.application.bot_data["adapter"].dialog
    threads: dict[str, str] = {}
    handle = dialog.handle

    def noting_thread(event, **kwargs):
        threads[event.text] = threading.current_thread().name
        return handle(event, **kwargs)

    dialog.handle = noting_thread
    await world.say(MEG, "/digest")
    await world.say(MEG, "/deals")
    on_loop = threading.main_thread().name
    off_loop = world.engine.dialect.name == "postgresql"
    assert (threads["/digest"] != on_loop) is off_loop
    assert threads["/deals"] == on_loop
    assert "Daily digest" in world.last_texts(MEG, 4)


async def test_an_error_outside_the_dialog_is_logged_without_what_the_rep_wrote(world, caplog):
    """PTB's error handler: one ERROR line naming the update and chat, not its text; the rep
    is told something went wrong."""
    adapter = world.application.bot_data["adapter"]

    async def broken(update):
        raise RuntimeError("the adapter broke")

    adapter._on_update = broken
    with caplog.at_level(logging.ERROR):
        update_id = await world.say(ANN, "Wang's budget is 3 million")
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.getMessage() == f"error while handling update {update_id} in chat {ANN}"
    assert "Wang" not in caplog.text
    assert world.texts(ANN)[-1] == t("en", "dialog.error_unsure")
