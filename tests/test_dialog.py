"""The dialog layer end to end on a real database: what a rep and a manager see and change."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bot.dialog import deal_view
from bot.dialog.events import Incoming, Sender
from bot.dialog.router import Dialog
from flows import engine as flow
from flows.i18n import t
from storage.answers import get_answers, list_answer_changes
from storage.db import make_engine, transaction
from storage.deals import get_deal_by_number, list_stage_changes
from storage.models import Deal
from storage.notes import notes_of
from tests.dialog_driver import FIXED_NOW, PLAYBOOK, Driver, plain
from tests.factories import make_member, make_team

REP, OTHER_REP, MANAGER, OTHER_TEAM_REP = 501, 502, 503, 601
FREE_TEXT = ("text", "number", "money", "percent", "date", "milestone", "list")
TYPED = {
    "text": "Head office training centre",
    "number": "120",
    "money": "500k",
    "percent": "30%",
    "date": "next Friday",
    "milestone": "2026-12-15, IT department",
    "list": "Acme, Globex",
}


@pytest.fixture
def team_engine(engine):
    """A team with two reps and a manager, and a rep of another team (all English)."""
    with Session(engine) as session:
        team = make_team(session, name="Sales East")
        make_member(session, team, telegram_user_id=REP, display_name="Ann")
        make_member(session, team, telegram_user_id=OTHER_REP, display_name="Bob")
        make_member(session, team, telegram_user_id=MANAGER, display_name="Meg", role="manager")
        other = make_team(session, name="Sales West")
        make_member(session, other, telegram_user_id=OTHER_TEAM_REP, display_name="Zed")
        session.commit()
    return engine


def answer_open_question(chat: Driver) -> str:
    """Answer whatever is being asked, the way a rep would (typing or pressing)."""
    key = chat.open_question()
    question = flow.question_for(PLAYBOOK, key)
    if question.item is not None:
        chat.say("yes, confirmed by the customer")
        return key
    spec = question.spec
    if spec.type == "choice":
        chat.press(spec.options[0].label["en"])
    elif spec.type == "yesno":
        chat.press("Yes")
    elif spec.type == "multichoice":
        chat.press(spec.options[0].label["en"])
        chat.press("Done")
    elif spec.type == "stakeholder":
        add_person(chat, "Wang", more=False)
    else:
        chat.say(TYPED[spec.type])
    return key


def add_person(chat: Driver, name: str, more: bool) -> None:
    chat.say(name)
    chat.say("CIO")
    chat.press("Decision maker")
    chat.press("High")
    chat.press("+2")
    chat.press("Yes" if more else "No")


def open_deal(chat: Driver, customer="Acme Bank", name="Training 2027", industry="Finance"):
    chat.say("/new")
    chat.say(customer)
    chat.say(name)
    chat.press(industry)
    chat.press("Yes")
    chat.press("Yes")


def deal_state(engine, number=1, team_id=1):
    with transaction(engine) as session:
        deal = get_deal_by_number(session, team_id=team_id, number=number)
        return deal, get_answers(session, deal_id=deal.id)


def walk_stage(chat: Driver) -> list[str]:
    """Answer every question of the run until the summary card; returns the keys asked."""
    asked = []
    while chat.open_question() is not None:
        asked.append(answer_open_question(chat))
        assert len(asked) < 60, "the run does not end"
    return asked


def test_a_new_deal_is_qualified_and_walked_through_stage_two(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    assert "is in our target group" in chat.text
    deal, answers = deal_state(team_engine)
    assert deal.stage_id == "potential" and not deal.outside_target
    assert answers["industry"] == "finance"

    asked = walk_stage(chat)
    stage = PLAYBOOK.stage("potential")
    required = [f.id for f in stage.fields if f.required]
    assert set(required) <= set(asked)
    assert f"Ready for “{PLAYBOOK.stage('intent').name['en']}”" in chat.text
    assert "Coaching questions" in chat.text

    deal, answers = deal_state(team_engine)
    assert answers["budget"] == 50_000_000 and deal.amount_minor == 50_000_000
    assert answers["project_team"][0]["name"] == "Wang"
    assert flow.gap_report(PLAYBOOK, "potential", answers).closed

    chat.say("/advance")
    chat.press("→")
    assert chat.last.events and chat.last.events[0].to_stage == "intent"
    deal, _ = deal_state(team_engine)
    assert deal.stage_id == "intent"


def test_a_customer_outside_the_target_group_is_told_why_and_recorded(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat, industry="Other")
    assert "outside our target group" in chat.text
    assert "Other" in chat.text
    deal, _ = deal_state(team_engine)
    assert deal.outside_target and "industry" in deal.outside_target_reason
    assert deal.stage_id == "potential"


def test_each_answer_is_committed_before_the_reply(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("Head office")  # customer background
    separate = make_engine(str(team_engine.url.render_as_string(hide_password=False)))
    with Session(separate) as session:
        deal = get_deal_by_number(session, team_id=1, number=1)
        assert get_answers(session, deal_id=deal.id)["customer_background"] == "Head office"
    separate.dispose()


def test_a_restarted_bot_resumes_at_the_same_question(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("Head office")
    waiting = chat.open_question()
    url = team_engine.url.render_as_string(hide_password=False)

    team_engine.dispose()  # the old process's connections are gone
    fresh = make_engine(url)
    restarted = Driver(fresh, REP)
    restarted.say("/help")
    question = flow.question_for(PLAYBOOK, waiting).spec.question["en"]
    assert question in restarted.text
    answer_open_question(restarted)
    fresh.dispose()
    _, answers = deal_state(team_engine)
    assert waiting in answers


@pytest.mark.parametrize(
    ("field", "bad", "error"),
    [
        ("budget", "", "came through empty"),
        ("budget", "   ", "came through empty"),
        ("budget", "x" * 10_000, "too long"),
        ("budget", "🙂🙂🙂", "doesn't look like an amount"),
        ("budget", "quite a lot", "doesn't look like an amount"),
        ("budget", "-5", "negative"),
        ("customer_background", "🙂🙂🙂", "not just symbols or emoji"),
        ("headcount", "lots", "number"),
        ("expected_close", "2026-02-30", "date"),
        ("expected_close", "someday soon", "date"),
    ],
    ids=lambda value: value[:12] if isinstance(value, str) else value,
)
def test_bad_input_is_explained_and_the_question_repeated(sqlite_engine, field, bad, error):
    with Session(sqlite_engine) as session:
        make_member(session, make_team(session), telegram_user_id=REP)
        session.commit()
    chat = Driver(sqlite_engine, REP)
    open_deal(chat)
    chat.say("Head office")
    chat.say(f"/update 1 {field}")
    _, before = deal_state(sqlite_engine)
    chat.say(bad)
    assert chat.open_question() == field
    first_reply = plain(chat.last.replies[0].text)
    assert error in first_reply, first_reply
    assert "For example" in first_reply or "at most" in first_reply
    assert PLAYBOOK.field(field).question["en"] in chat.text  # the same question again
    _, after = deal_state(sqlite_engine)
    assert after == before


def test_an_impossible_date_and_an_out_of_range_number_are_refused(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    while chat.open_question() != "headcount":
        answer_open_question(chat)
    chat.say("0")
    assert chat.open_question() == "headcount"
    chat.say("120")
    deal, answers = deal_state(team_engine)
    assert answers["headcount"] == 120
    chat.say("/update 1 expected_close")
    chat.say("2026-13-45")
    assert chat.open_question() == "expected_close"
    chat.say("2026-12-24")
    _, answers = deal_state(team_engine)
    assert answers["expected_close"] == "2026-12-24"


def test_unknown_commands_and_idle_text_get_a_hint(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/frobnicate now")
    assert "/frobnicate" in chat.text and "/help" in chat.text
    chat.say("hello")
    assert "/update" in chat.text
    open_deal(chat)
    waiting = chat.open_question()
    chat.say("/frobnicate")
    assert chat.open_question() == waiting
    assert flow.question_for(PLAYBOOK, waiting).spec.question["en"] in chat.text


def test_a_button_of_an_answered_question_changes_nothing(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    while flow.question_for(PLAYBOOK, chat.open_question()).spec.type != "choice":
        answer_open_question(chat)
    old = chat.button(PLAYBOOK.field("company_size").options[1].label["en"])
    answer_open_question(chat)
    _, before = deal_state(team_engine)
    chat.press_data(old.data)
    assert chat.last.notice == t("en", "dialog.old_button")
    _, after = deal_state(team_engine)
    assert after == before


@pytest.mark.parametrize(
    "typed", ["不清楚", "不知道。", "还没定", "不好说", "待定", "Don't know", "not sure!", "TBD"]
)
def test_not_known_in_words_leaves_the_gap_open_as_the_button_does(team_engine, typed):
    """Issue 14: typing 不清楚 or 不知道 saved that text as the answer and closed the gap; only
    the button kept it open."""
    chat = Driver(team_engine, REP)
    open_deal(chat)
    first = chat.open_question()  # a question answered in free text
    chat.say(typed)
    assert chat.open_question() != first  # on to the next one, as after the button
    assert "Not known yet" in plain(chat.last.edited.text)
    _, answers = deal_state(team_engine)
    assert first not in answers
    chat.say("/back")
    chat.say("不清楚客户背景，但预算大概100万")  # more than "not known": an answer
    assert deal_state(team_engine)[1][first] == "不清楚客户背景，但预算大概100万"


def test_yes_or_no_in_words_keeps_the_rest_of_the_sentence(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/new")
    chat.say("Acme Bank")
    chat.say("Training 2027")
    chat.press("Finance")
    chat.say("需要，客户在做<数字化>转型")
    assert "客户在做&lt;数字化&gt;转型" in chat.last.edited.text  # shown with the answer, escaped
    chat.say("对 很需要")
    deal, answers = deal_state(team_engine)
    assert answers["needs_training_it"] is True and answers["fits_profile"] is True
    assert not deal.outside_target
    with Session(team_engine) as session:
        notes = notes_of(session, deal_id=deal.id)
    assert [(n.field_key, n.text) for n in notes] == [
        ("needs_training_it", "客户在做<数字化>转型"),
        ("fits_profile", "很需要"),
    ]


def test_a_hedge_is_neither_yes_nor_no(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/new")
    chat.say("Acme Bank")
    chat.say("Training 2027")
    chat.press("Finance")
    chat.say("有点需要吧")
    assert "yes or no" in chat.text and chat.open_question() == "needs_training_it"


def test_skip_leaves_a_gap_and_back_returns_to_the_previous_question(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    first = chat.open_question()
    chat.say("/skip")
    second = chat.open_question()
    assert second != first
    chat.press("Back")
    assert chat.open_question() == first
    chat.say("Regional bank")
    _, answers = deal_state(team_engine)
    assert answers[first] == "Regional bank"
    chat.say("/skip")
    chat.say("/cancel")
    assert "Everything you answered is saved" in chat.text
    chat.say("/gaps 1")
    assert chat.open_question() is None
    report = flow.gap_report(PLAYBOOK, "potential", deal_state(team_engine)[1])
    assert f"{report.open_count} open:" in chat.text
    assert PLAYBOOK.field(second).question["en"] in chat.text  # skipped: still a gap


def test_stakeholders_are_collected_one_part_at_a_time(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/update 1 project_team")
    chat.say("Wang")
    chat.say("CIO")
    chat.say("decision maker")
    chat.press("High")
    chat.say("+5")  # out of range: asked again
    assert "+5" not in str(deal_state(team_engine)[1].get("project_team"))
    chat.press("+2")
    chat.press("Yes")
    add_person(chat, "Li", more=False)
    _, answers = deal_state(team_engine)
    people = answers["project_team"]
    assert [p["name"] for p in people] == ["Wang", "Li"]
    assert people[0] == {
        "name": "Wang",
        "title": "CIO",
        "role": "decision_maker",
        "influence": "high",
        "attitude": 2,
    }


def test_multiple_choice_toggles_and_a_checklist_note_is_kept(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/update 1 tech_database")
    chat.press("Oracle")
    chat.press("MySQL")
    chat.press("Oracle")  # toggled off again
    assert "✅ MySQL" in chat.labels
    chat.press("Done")
    chat.say("/update 1 potential_doing_well")
    chat.say("yes, profit up 12% this year")
    _, answers = deal_state(team_engine)
    assert answers["tech_database"] == ["mysql"]
    assert answers["potential_doing_well"] == {"checked": True, "note": "profit up 12% this year"}


def test_advance_is_blocked_by_gaps_and_jumps_need_every_stage_closed(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/cancel")
    chat.say("/advance 1")
    intent, potential = (PLAYBOOK.stage(s).name["en"] for s in ("intent", "potential"))
    assert f"can't move to “{intent}” yet" in chat.text
    assert PLAYBOOK.field("budget").question["en"] in chat.text
    chat.say("/advance 1 4")
    assert f"{potential} (" in chat.text and f"{intent} (" in chat.text
    chat.say("/advance 1 1")
    chat.press("→")
    deal, _ = deal_state(team_engine)
    assert deal.stage_id == "target"
    with transaction(team_engine) as session:
        kinds = [c.kind for c in list_stage_changes(session, deal_id=deal.id)]
    assert kinds == ["open", "advance", "back"]


def test_a_lost_deal_keeps_its_reason_and_cannot_be_updated(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/lost 1")
    chat.say("🤷")
    assert chat.text == t("en", "dialog.text_no_words")
    assert deal_state(team_engine)[0].status == "open"
    chat.say("Budget moved to 2028")
    deal, _ = deal_state(team_engine)
    assert deal.status == "lost" and deal.lost_reason == "Budget moved to 2028"
    assert chat.last.events[0].kind == "lost"
    chat.say("/update 1")
    assert "was lost" in chat.text


def test_reps_never_see_or_change_other_peoples_deals(team_engine):
    owner = Driver(team_engine, REP)
    open_deal(owner)
    deal, before = deal_state(team_engine)
    for user in (OTHER_REP, OTHER_TEAM_REP):
        intruder = Driver(team_engine, user)
        for command in ("/update 1", "/gaps 1", "/advance 1 1", "/lost 1", "/edit 1", "/deals"):
            intruder.say(command)
            assert "Training 2027" not in intruder.text and "Acme" not in intruder.text
        for data in (f"d:u:{deal.id}", f"a:{deal.id}:1:0", f"e:{deal.id}:budget", "q:1:yes"):
            intruder.press_data(data)
            assert intruder.last.notice == t("en", "dialog.old_button")
    after_deal, after = deal_state(team_engine)
    assert after == before and after_deal.stage_id == deal.stage_id
    assert after_deal.status == "open"


def test_a_manager_sees_the_teams_deals_grouped_by_rep(team_engine):
    open_deal(Driver(team_engine, REP), customer="Acme Bank")
    open_deal(Driver(team_engine, OTHER_REP), customer="Globex Power", industry="Power")
    manager = Driver(team_engine, MANAGER)
    manager.say("/deals")
    assert "Ann" in manager.text and "Bob" in manager.text
    assert "Acme Bank" in manager.text and "Globex Power" in manager.text
    manager.say("/update 2 budget")
    manager.say("1.2m")
    deal, answers = deal_state(team_engine, number=2)
    assert answers["budget"] == 120_000_000
    with transaction(team_engine) as session:
        change = list_answer_changes(session, deal_id=deal.id, key="budget")[-1]
    assert change.changed_by == 3  # the manager's member id


def test_language_switch_and_chinese_by_default(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/lang zh")
    assert "中文" in chat.text
    chat.say("/new")
    assert "客户" in chat.text
    chat.say("/lang")
    chat.press("English")
    assert "We were opening a deal" in chat.text


def test_someone_who_has_not_joined_learns_only_how_to_join(team_engine):
    stranger = Driver(team_engine, 999, language_code="zh-hans")
    for text in ("/start", "/deals", "/update 1", "hello"):
        stranger.say(text)
        assert stranger.text == t("zh", "dialog.not_a_member")
    stranger.press_data("d:u:1")
    assert stranger.text == t("zh", "dialog.not_a_member")


def test_user_text_is_escaped(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat, customer="<b>Evil</b> & Co", name="x<i>")
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in chat.raw
    assert "<b>Evil</b>" not in chat.raw


def test_an_unexpected_error_is_logged_and_the_member_told(team_engine, monkeypatch, caplog):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    waiting = chat.open_question()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("bot.dialog.deal_view.save_answer", broken)
    with caplog.at_level(logging.ERROR):
        chat.say("Head office of Wang's client")
    assert chat.text == t("en", "dialog.error")
    assert "disk on fire" in caplog.text
    assert f"user {REP} (28 characters of text)" in caplog.text
    assert "Wang" not in caplog.text  # what the rep wrote stays out of the log
    assert chat.open_question() == waiting


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def _answer_after_deadlocks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, times: int
) -> tuple[Driver, str | None, list[int]]:
    """A rep answers while PostgreSQL picks the turn as a deadlock victim ``times`` times;
    returns the chat, the question asked before, and save_answer's calls."""
    chat = Driver(engine, REP)
    open_deal(chat)
    question = chat.open_question()
    calls: list[int] = []
    save = deal_view.save_answer

    def deadlocked_save_answer(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("UPDATE deal ...", {}, _Deadlock("deadlock detected"))
        return save(*args, **kwargs)

    monkeypatch.setattr("bot.dialog.deal_view.save_answer", deadlocked_save_answer)
    chat.say("Head office")
    return chat, question, calls


def test_a_turn_chosen_as_a_deadlock_victim_runs_again_once(team_engine, monkeypatch):
    chat, question, calls = _answer_after_deadlocks(team_engine, monkeypatch, times=1)
    assert len(calls) == 2
    assert chat.open_question() != question  # answered, on to the next question
    with Session(team_engine) as session:
        [deal_id] = session.exec(select(Deal.id)).all()
        assert list(get_answers(session, deal_id=deal_id).values()).count("Head office") == 1


def test_a_turn_deadlocked_twice_is_an_error_like_any_other(team_engine, monkeypatch):
    chat, question, calls = _answer_after_deadlocks(team_engine, monkeypatch, times=2)
    assert len(calls) == 2
    assert chat.text == t("en", "dialog.error")
    assert chat.open_question() == question


def test_edit_reaches_earlier_stages_and_rechecks_the_target_group(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat, industry="Other")
    chat.say("/cancel")
    chat.say("/edit 1")
    target = PLAYBOOK.stage("target").name["en"]
    first_of_stage = PLAYBOOK.stage("potential").fields[0].question["en"]
    assert chat.labels[0] == f"⬜ {first_of_stage}"
    chat.press(target)
    chat.press(PLAYBOOK.field("industry").question["en"])
    chat.press("Finance")
    deal, answers = deal_state(team_engine)
    assert answers["industry"] == "finance"
    assert not deal.outside_target and deal.outside_target_reason is None
    assert deal.stage_id == "potential"
    assert "✔ Finance" in plain(chat.last.edited.text)


def test_target_group_questions_left_unknown_are_not_a_pass_and_are_asked_again(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/new")
    chat.say("Gamma")
    chat.say("Pilot")
    for _ in range(3):
        chat.say("/skip")
    assert "not known yet" in chat.text and t("en", "dialog.qualified")[:20] not in chat.text
    deal, _ = deal_state(team_engine)
    assert deal.stage_id == "potential" and not deal.outside_target
    keys = walk_stage(chat)
    assert {"industry", "needs_training_it", "fits_profile"} <= set(keys)


def test_an_attitude_is_typed_as_a_number_and_parts_can_be_skipped_or_revisited(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/update 1 project_team")
    chat.say("Wang")
    chat.say("/skip")  # title unknown: only that part is left blank
    chat.press("Back")  # back to the title
    chat.say("CIO")
    chat.press("Decision maker")
    chat.press("High")
    assert chat.last.replies[-1].expects_text  # numbers typed here are attitudes
    chat.say("3")
    chat.press("Yes")
    chat.say("Li")
    chat.say("/skip")
    chat.say("/skip")
    chat.say("/skip")
    chat.say("/skip")
    _, answers = deal_state(team_engine)
    assert answers["project_team"][0]["attitude"] == 3
    assert answers["project_team"][0]["title"] == "CIO"
    assert answers["project_team"][1] == {
        "name": "Li",
        "title": None,
        "role": None,
        "influence": None,
        "attitude": None,
    }
    chat.press("Start the list over")
    add_person(chat, "Zhao", more=False)
    _, answers = deal_state(team_engine)
    assert [p["name"] for p in answers["project_team"]] == ["Zhao"]


def test_a_won_deal_moved_back_is_open_again_and_its_old_question_is_dropped(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    walk_stage(chat)
    for stage in PLAYBOOK.stages[2:6]:
        chat.say(f"/advance 1 {PLAYBOOK.stage_index(stage.id) + 1}")
        chat.press("→")
        chat.say("/update 1")
        walk_stage(chat)
    chat.say("/advance 1 7")
    chat.press("→")
    assert deal_state(team_engine)[0].status == "won"
    assert chat.last.events[0].kind == "won"
    chat.say("/update 1")
    assert chat.open_question() is not None
    chat.say("/advance 1 3")
    chat.press("→")
    deal, _ = deal_state(team_engine)
    assert deal.status == "open" and deal.stage_id == "intent"
    assert chat.open_question() is None


def test_junk_arguments_and_forged_buttons_never_crash(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    waiting = chat.open_question()
    for text in (
        "/gaps ²",
        "/advance 1 ³",
        "/update 1 @²",
        "/update 99999999999999999999",
        "/lang xx",
    ):
        chat.say(text)
        assert t("en", "dialog.error") not in chat.text, text
    for data in ("q:²:yes", "d:u:99999999999999999999", "a:1:²:3", "e:1:@9", "zz", "", "q:1"):
        chat.press_data(data)
        assert t("en", "dialog.error") not in chat.text, data
    assert chat.open_question() == waiting


def test_a_press_on_an_old_button_repeats_the_open_question(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    old = chat.button("Not known yet")
    chat.say("Head office")
    waiting = chat.open_question()
    chat.press_data(old.data)
    assert chat.last.notice == t("en", "dialog.old_button")
    assert PLAYBOOK.field(waiting).question["en"] in chat.text


def test_errors_are_told_in_the_members_language(team_engine, monkeypatch):
    chat = Driver(team_engine, REP, language_code="zh")  # Telegram says zh, the member chose en
    open_deal(chat)
    monkeypatch.setattr("bot.dialog.deal_view.save_answer", lambda *a, **k: 1 / 0)
    chat.say("Head office")
    assert chat.text == t("en", "dialog.error")


def test_a_team_playbook_without_the_open_question_does_not_leave_the_member_stuck(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    assert chat.open_question() == "customer_background"
    trimmed = PLAYBOOK.model_copy(deep=True)
    potential = trimmed.stage("potential")
    object.__setattr__(
        potential, "fields", [f for f in potential.fields if f.id != "customer_background"]
    )
    after = Driver(team_engine, REP, playbook=trimmed)
    after.say("/gaps")
    assert t("en", "dialog.error") not in after.text
    assert after.open_question() is None


def test_a_lost_deal_cannot_be_edited(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/lost 1")
    chat.say("Went with a competitor")
    for command in ("/edit 1", "/update 1 budget", "/advance 1"):
        chat.say(command)
        assert "was lost (Went with a competitor)" in chat.text, command
    chat.say("/gaps 1")
    assert "Fill in now" not in chat.labels


def test_names_of_only_emoji_are_refused(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/new")
    chat.say("😀")
    assert chat.text == t("en", "dialog.text_no_words")
    chat.say("Acme")
    assert "Customer: Acme" in chat.text


def test_the_stop_button_ends_the_round_and_keeps_the_answers(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("Head office")
    chat.press("Stop")
    assert chat.open_question() is None
    assert "Stopped here" in plain(chat.last.edited.text)
    assert deal_state(team_engine)[1]["customer_background"] == "Head office"
    assert "open:" in chat.text  # the summary card


def test_a_member_sets_their_time_zone(team_engine):
    chat = Driver(team_engine, REP)
    chat.say("/tz")
    assert "Asia/Shanghai" in chat.text
    chat.say("/tz Mars/Olympus")
    assert "don't know the time zone" in chat.text
    chat.say("/tz ../../etc/passwd")
    assert "don't know the time zone" in chat.text
    chat.say("/tz Europe/Berlin")
    with transaction(team_engine) as session:
        from storage.teams import get_member_by_telegram_id

        assert get_member_by_telegram_id(session, telegram_user_id=REP).timezone == (
            "Europe/Berlin"
        )


def test_a_removed_member_can_rejoin_with_a_new_invite(team_engine):
    from storage.invites import create_invite
    from storage.teams import get_member_by_telegram_id, update_member

    with transaction(team_engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=REP)
        update_member(session, member_id=member.id, active=False)
        code = create_invite(session, team_id=member.team_id, role="manager", now=FIXED_NOW)
    chat = Driver(team_engine, REP)
    chat.say("/deals")
    assert chat.text == t("en", "dialog.not_a_member")  # the driver's Telegram language
    chat.say(f"/start {code}")
    assert "Welcome to Sales East" in chat.text
    with transaction(team_engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=REP)
        assert member.active and member.role == "manager"


def test_nul_characters_are_dropped_before_anything_is_stored(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat, customer="Ac\x00me", name="Dea\x00l")
    chat.say("Head\x00 office")
    deal, answers = deal_state(team_engine)
    assert deal.customer == "Acme" and deal.name == "Deal"
    assert answers["customer_background"] == "Head office"


def test_resume_now_works_once(team_engine):
    chat = Driver(team_engine, REP)
    open_deal(chat)
    chat.say("/cancel")
    chat.say("/pause 1")
    chat.say("Budget cycle")
    chat.say("2027-03-01")
    chat.say("/pause 1")
    resume = chat.button("Resume now")
    chat.press_data(resume.data)
    assert "active again" in plain(chat.last.edited.text)
    chat.press_data(resume.data)
    assert chat.last.notice == t("en", "dialog.old_button")
    assert chat.last.edited is None


def test_only_a_whole_team_digest_counts_as_a_long_read(sqlite_engine: Engine) -> None:
    dialog = Dialog(sqlite_engine, PLAYBOOK)
    sender = Sender(user_id=1, name="Ann", language_code="en")
    long_reads = ["/digest", "/Digest@StageCoachBot", "/digest week"]
    others = ["/deals", "digest", "/digests", "/update 3"]
    assert all(dialog.reads_long(Incoming(sender, text=text)) for text in long_reads)
    assert not any(dialog.reads_long(Incoming(sender, text=text)) for text in others)
    assert not dialog.reads_long(Incoming(sender, button="/digest"))


def test_a_typed_answer_costs_the_same_statements_as_the_benchmarks_measure(team_engine):
    """A chat turn that saves a typed answer, statement by statement: the member with their
    state (and the update's claim, which these events without an update id skip), the deal with
    its answers, the answer with its history and the deal's touch, the conversation, and the
    replies kept in the outbox as the bot keeps them (bot/dialog/outbox.py). On PostgreSQL each
    is one round trip to the server; SQLite reads the deal and its answers, and writes the
    answer, its history, the touch and each kept message, one by one (in-process: no round
    trips). Either way the deal and its answers are read once however often the turn uses
    them."""
    chat = Driver(team_engine, REP)
    open_deal(chat)
    assert chat.open_question() == "customer_background"
    seen: list[str] = []

    @sa_event.listens_for(team_engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split())[:60])

    response = chat.dialog.handle(Incoming(chat.sender, text="Head office"), outbox=True)
    sa_event.remove(team_engine, "before_cursor_execute", count)
    assert chat.open_question() != "customer_background"
    assert len(response.queued) == len(response.replies) + 1  # and the answered question's edit
    work = [s for s in seen if not s.startswith("BEGIN")]  # SQLite's BEGIN IMMEDIATE
    on_sqlite = 7 + len(response.queued)
    assert len(work) == (5 if team_engine.dialect.name == "postgresql" else on_sqlite), work


# What buttons carry that a rep might also type: never taken for a press when typed.
TYPED_BUTTON_WORDS = ["restart", "done", "t.", "t.finance", "t.price", "yes_no", "q:1:skip"]


def test_typed_text_is_never_taken_for_a_button(team_engine):
    """At every question a button answers (stages 1-3: choices, yes/no, several choices,
    people, checklist items), each word a button carries is typed: nothing saved changes and
    the same question stays open. Issue 18: typing "restart" at "add another person?" wiped
    the list of people."""
    chat = Driver(team_engine, REP)
    for text in ("/new", "Acme Bank", "Training 2027"):
        chat.say(text)
    typed_at = _type_button_words_at_each_question(chat, team_engine)
    chat.say("/advance 1")
    chat.press("→")
    chat.say("/update 1")
    typed_at += _type_button_words_at_each_question(chat, team_engine)
    assert {"choice", "yesno", "multichoice", "stakeholder", "checklist"} <= set(typed_at)


def _type_button_words_at_each_question(chat: Driver, engine) -> list[str]:
    """Walk the open run; before answering each question, type every button word at it."""
    typed_at = []
    while (key := chat.open_question()) is not None:
        question = flow.question_for(PLAYBOOK, key)
        kind = "checklist" if question.item is not None else question.spec.type
        if kind == "stakeholder":
            for text in ("Wang", "CIO"):
                chat.say(text)
            for label in ("Decision maker", "High", "+2"):
                chat.press(label)  # now at "add another person?"
        if kind not in FREE_TEXT:
            before = deal_state(engine)[1]
            for word in TYPED_BUTTON_WORDS:
                chat.say(word)
                assert chat.open_question() == key, (key, word)
                assert deal_state(engine)[1] == before, (key, word)
            typed_at.append(kind)
        if kind == "stakeholder":
            chat.press("No")
        else:
            answer_open_question(chat)
    return typed_at


def test_a_full_disk_is_not_saved_with_one_line_and_no_traceback(team_engine, monkeypatch, caplog):
    """Issue 13: with the disk full, every turn failed correctly with "not saved", but each
    logged tracebacks. A database that fails is an operator's fact: one line, its cause."""
    import sqlite3

    chat = Driver(team_engine, REP)
    chat.say("/new")

    def disk_full(*args, **kwargs):
        raise OperationalError("INSERT INTO ...", {}, sqlite3.OperationalError("disk is full"))

    monkeypatch.setattr("bot.dialog.router.start_turn", disk_full)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            chat.say("Acme Bank")
            assert chat.text == t("en", "dialog.error")
    failed = [r for r in caplog.records if r.name.startswith("bot.")]
    assert len(failed) == 2 and all(r.exc_info is None for r in failed), failed
    assert failed[0].getMessage().endswith("not saved, the database failed (disk is full)")
    assert "Acme" not in caplog.text  # what the rep wrote stays out of the log
