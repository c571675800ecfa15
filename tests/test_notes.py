"""Visit notes in the dialog (bot/dialog/notes.py): a note, its card, and what is asked after."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from storage.notes import notes_of
from tests.dialog_driver import Driver
from tests.factories import make_member, make_team
from tests.test_dialog import deal_state

REP = 701
NOTE = (
    "今天拜访了南京银行郑总，他对数据安全有顾虑，预算大概300万，"
    "竞争对手有用友和金蝶，下周三做技术交流"
)


@pytest.fixture
def rep(engine):
    with Session(engine) as session:
        team = make_team(session, name="Sales East")
        make_member(session, team, telegram_user_id=REP, display_name="Ann")
        session.commit()
    return Driver(engine, REP)


def open_deal(chat: Driver, customer: str = "南京银行", name: str = "培训平台") -> None:
    chat.say(f"/new {customer} {name}")
    chat.press("Finance")
    chat.press("Yes")
    chat.press("Yes")
    chat.say("/cancel")


def texts(chat: Driver) -> str:
    return chat.text + "\n" + (chat.last.edited.text if chat.last.edited else "")


def test_a_note_becomes_a_card_then_only_what_is_missing_is_asked(rep, engine):
    open_deal(rep)
    rep.say(NOTE)
    card = rep.text
    assert "From your note on #1" in card
    assert "about CN¥3,000,000.00" in card and "「预算大概300万」" in card
    assert "用友, 金蝶" in card
    assert "Next step:" in card and "做技术交流" in card
    rep.press("Save all")
    deal, answers = deal_state(engine)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}
    assert deal.amount_minor == 300_000_000
    assert answers["competitors"] == ["用友", "金蝶"]
    assert answers["project_team"][0]["name"] == "郑总"
    assert "Saved" in rep.last.edited.text
    asked = rep.open_question()  # the stage's first question still open, not one just filled
    assert asked is not None and asked not in {"budget", "competitors", "project_team"}
    with Session(engine) as session:
        [kept] = notes_of(session, deal_id=deal.id)
    assert kept.text == NOTE and kept.field_key is None


def test_one_value_fixed_and_one_dropped(rep, engine):
    open_deal(rep)
    rep.say("南京银行 预算大概300万 竞争对手有用友和金蝶")
    assert "competing? 用友, 金蝶" in rep.text.splitlines()[1]  # the playbook's order
    rep.press("✏️ 2")  # the budget: asked, with what the note said
    assert "The note said: about CN¥3,000,000.00" in rep.text
    rep.say("280万")
    assert "Saved" in rep.text
    rep.press("✖ 1")  # competitors, now first
    deal, answers = deal_state(engine)
    assert answers["budget"] == 280_000_000 and "competitors" not in answers


def test_a_note_that_contradicts_a_saved_answer_asks_on_its_own(rep, engine):
    open_deal(rep)
    rep.say("/update 1 budget")
    rep.say("200万")
    rep.say("/cancel")
    rep.say("南京银行 预算大概300万 竞争对手有用友")
    assert "CN¥2,000,000.00 → about CN¥3,000,000.00" in rep.text and "⚠️" in rep.text
    rep.press("Save all")  # the competitors only
    _, answers = deal_state(engine)
    assert answers["budget"] == 200_000_000 and answers["competitors"] == ["用友"]
    rep.press("✅ 1")  # now the new budget, on its own
    _, answers = deal_state(engine)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}


def test_a_note_sent_while_a_question_is_open(rep, engine):
    open_deal(rep)
    rep.say("/update 1 budget")
    rep.say("见了郑总，预算大概300万，竞争对手有用友和金蝶")
    assert "From your note" in rep.text
    rep.press("Save all")
    _, answers = deal_state(engine)
    assert answers["competitors"] == ["用友", "金蝶"]


def test_a_note_naming_no_deal_asks_which_and_keeps_the_words(rep, engine):
    open_deal(rep)
    open_deal(rep, customer="广东移动", name="网上大学")
    rep.say("预算大概300万，下周三做技术交流")
    assert "Which deal" in rep.text
    rep.press("广东移动")
    rep.press("Save all")
    deal, answers = deal_state(engine, number=2)
    assert answers["budget"] == {"amount": 300_000_000, "approx": True}
    with Session(engine) as session:
        kept = [n.text for n in notes_of(session, deal_id=deal.id)]
    assert kept == ["预算大概300万，下周三做技术交流"]


def test_a_new_deal_from_a_note(rep, engine):
    rep.say("预算大概120万，竞争对手有云学堂")
    rep.press("New deal")
    rep.say("国网江苏电力")
    rep.say("技能培训考试系统")
    assert "From your note on #1" in rep.text


def test_new_with_words_opens_the_deal_and_reads_the_rest(rep, engine):
    rep.say("/new 国网江苏电力 技能培训考试系统 预算大概120万")
    assert "Created #1" in rep.text
    assert "about CN¥1,200,000.00" in rep.text
    deal, _ = deal_state(engine)
    assert (deal.customer, deal.name) == ("国网江苏电力", "技能培训考试系统")


def test_short_idle_text_is_not_a_note(rep):
    rep.say("ok")
    assert "What would you like to do" in rep.text


def test_update_finds_a_field_by_a_word(rep, engine):
    open_deal(rep)
    rep.say("/update 1 预算")
    assert rep.open_question() == "budget"
    rep.say("/cancel")
    rep.say("/update 1 competitors")
    assert rep.open_question() == "competitors"
    rep.say("/cancel")
    rep.say("/update 1 customer")  # several questions hold the word: a button each
    assert "may mean one of these" in rep.text and len(rep.labels) > 1
    rep.say("/update 1 no such thing")
    assert "There is no question “no such thing”" in rep.text


def test_fields_are_found_by_cue_id_or_question():
    from flows.playbook import load_playbook

    playbook = load_playbook()
    assert [f.id for f in playbook.fields_named("预算")] == ["budget", "project_budget"]
    assert [f.id for f in playbook.fields_named("headcount")] == ["headcount"]
    assert "bid_date" in [f.id for f in playbook.fields_named("投标")]
    assert playbook.fields_named("x") == []


def test_more_words_at_an_open_card_are_another_note(rep, engine):
    open_deal(rep)
    rep.say("南京银行 预算大概300万")
    rep.say("南京银行 竞争对手有用友")  # typed instead of tapping: a new card for the new note
    assert "用友" in rep.text and "From your note" in rep.text
    rep.press("Save all")
    deal, answers = deal_state(engine)
    assert answers["competitors"] == ["用友"] and "budget" not in answers
    with Session(engine) as session:
        assert len(notes_of(session, deal_id=deal.id)) == 2  # both kept, word for word


def test_a_note_on_a_lost_deal_is_kept_and_changes_nothing(rep, engine):
    open_deal(rep)
    rep.say("/lost 1")
    rep.say("客户选了别家")
    rep.say("/note 1 预算大概300万")
    assert "lost" in rep.text.lower()
    deal, answers = deal_state(engine)
    assert "budget" not in answers
    with Session(engine) as session:
        assert [n.text for n in notes_of(session, deal_id=deal.id)] == ["预算大概300万"]


def test_gaps_show_the_latest_notes_with_day_and_author(rep, engine):
    open_deal(rep)
    rep.say("/note 1 见了郑总，<聊得不错>")
    rep.say("/cancel")
    rep.say("/gaps 1")
    assert "Latest notes:" in rep.text and "Ann: 见了郑总，<聊得不错>" in rep.text
    assert "&lt;聊得不错&gt;" in rep.raw  # the rep's words, escaped


def test_a_visit_told_at_a_text_question_is_a_note_and_the_question_waits(rep, engine):
    open_deal(rep)
    rep.say("/update 1 customer_background")
    rep.say("南京银行 预算大概300万 竞争对手有用友和金蝶 下周三做技术交流")
    assert "From your note" in rep.text
    rep.press("Save all")
    _, answers = deal_state(engine)
    assert "customer_background" not in answers  # not the whole visit as the background
    assert answers["competitors"] == ["用友", "金蝶"]
    rep.say("/update 1 customer_background")
    rep.say("江苏省内最大的城商行之一，总行在南京")  # an answer alone is still an answer
    assert deal_state(engine)[1]["customer_background"] == "江苏省内最大的城商行之一，总行在南京"


def test_not_known_at_a_fix_drops_the_value_read(rep, engine):
    open_deal(rep)
    rep.say("南京银行 预算大概300万 竞争对手有用友")
    rep.press("✏️ 2")  # the budget
    rep.say("不清楚")
    assert "stays open" in rep.text
    rep.press("Save all")
    _, answers = deal_state(engine)
    assert "budget" not in answers and answers["competitors"] == ["用友"]
