"""Visit notes: what reading one costs, and how much a note saves a rep.

**Extraction cost** — ``flows.extract.extract`` on 600-character notes, each made by joining
notes of the labelled corpora (``tests/data/visit_notes*.jsonl``) until 600 characters, read
for the commercial stage (the most fields); p50 and p99 over every note and repetition.

**Rep effort** — scripted reps in the dialog itself (``bot.dialog.router.Dialog`` in this
process, SQLite in memory): each opens a deal (``/new`` with its customer and name, the
target-group buttons), then sends one corpus note written at that stage, taps "save all" on the
card, and answers what is still asked until the stage's required fields are all answered:
typed answers where text is wanted, the question's buttons where it offers them, a person in
one line and "no more". Messages plus taps are counted from the note on. The baseline in the
same run is the same rep without a note: every required question answered one by one. Stage 2
(潜在的商机) uses the notes written at it, stage 3 (意向客户阶段) those written at it, on a deal
whose stage 2 is complete.
"""

from __future__ import annotations

import json
import statistics
import time
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bench.report import Figure, at_most, info
from bench.sizes import Sizes
from flows import engine as flow
from flows.extract import extract
from flows.playbook import load_playbook
from storage.answers import get_answers
from storage.db import make_engine, transaction, upgrade
from storage.deals import get_deal_by_number, list_deals
from storage.models import Team
from storage.teams import get_member_by_telegram_id
from tests.dialog_driver import FIXED_NOW, Driver
from tests.factories import make_member, make_team

CORPORA = Path(__file__).resolve().parents[1] / "tests" / "data"
NOTE_CHARS = 600
P99_LIMIT_MS = 30.0
STAGE_TWO_LIMIT, STAGE_THREE_LIMIT = 12, 15
PLAYBOOK = load_playbook()
TYPED = {
    "text": "总部培训中心",
    "number": "1200",
    "money": "50万",
    "percent": "30%",
    "date": "2027-03-15",
    "milestone": "2027-01-15 采购中心",
    "list": "用友、金蝶",
}


def run(sizes: Sizes) -> list[tuple[str, list[Figure]]]:
    notes = _corpus()
    return [
        ("notes: extraction cost", _cost(notes, repeats=2 if sizes.reps < 100 else 20)),
        ("notes: rep effort (messages + taps)", _effort(notes, quick=sizes.reps < 100)),
    ]


def _corpus() -> list[dict[str, Any]]:
    entries = []
    for path in sorted(CORPORA.glob("visit_notes*.jsonl")):
        entries += [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    return entries


# -- cost -------------------------------------------------------------------------------------


def _cost(entries: list[dict[str, Any]], repeats: int) -> list[Figure]:
    texts = [e["note"] for e in entries]
    long_notes = []
    for start in range(len(texts)):
        joined, index = "", start
        while len(joined) < NOTE_CHARS:
            joined += texts[index % len(texts)] + "\n"
            index += 1
        long_notes.append(joined[:NOTE_CHARS])
    timings = []
    for _ in range(repeats):
        for note in long_notes:
            started = time.perf_counter()
            extract(note, PLAYBOOK, stage_id="commercial", now=FIXED_NOW)
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return [
        info("p50, 600-character note", statistics.median(timings), "ms"),
        at_most("p99, 600-character note", p99, P99_LIMIT_MS, "ms", f"{len(timings)} readings"),
    ]


# -- effort -----------------------------------------------------------------------------------

_users = count(10_000)


def _effort(entries: list[dict[str, Any]], quick: bool) -> list[Figure]:
    engine = make_engine("sqlite://")
    upgrade(engine)
    with Session(engine) as session:
        team_id = make_team(session, name="Bench").id
        session.commit()
    figures = []
    for stage, limit in (("potential", STAGE_TWO_LIMIT), ("intent", STAGE_THREE_LIMIT)):
        notes = [e["note"] for e in entries if e["stage"] == stage][: 4 if quick else None]
        with_note = [_rep(engine, team_id, stage, note) for note in notes]
        without = _rep(engine, team_id, stage, None)
        median = statistics.median(with_note)
        name = "stage 2" if stage == "potential" else "stage 3"
        figures += [
            info(f"{name}, without a note (baseline)", without, "", "one question at a time"),
            at_most(
                f"{name}, median with one note",
                median,
                limit + 1,
                "",
                f"{len(notes)} notes; {median / without:.0%} of the baseline",
            ),
        ]
    engine.dispose()
    return figures


def _rep(engine: Engine, team_id: int, stage: str, note: str | None) -> int:
    """Messages and taps to fill ``stage``'s required fields, from the note on."""
    user = next(_users)
    with Session(engine) as session:
        team = session.get(Team, team_id)
        make_member(session, team, telegram_user_id=user, display_name=f"R{user}", language="zh")
        session.commit()
    chat = Driver(engine, user, language_code="zh")
    number = _open_deal(chat, engine, user, stage)
    chat.say("/cancel")
    actions = 0
    if note is None:
        chat.say(f"/update {number}")
    else:
        chat.say(f"/note {number} {note}")  # corpus notes name other customers: say which deal
        if any("全部保存" in label for label in chat.labels):
            chat.press("全部保存")
            actions += 1
    actions += 1
    while not _filled(engine, user, number, stage):
        key = chat.open_question()
        if key is None:
            chat.say(f"/update {number}")
            actions += 1
            key = chat.open_question()
            if key is None:
                break
        actions += _answer(chat, key)
        if actions > 80:
            break
    return actions


def _open_deal(chat: Driver, engine: Engine, user: int, stage: str) -> int:
    chat.say(f"/new 客户{user} 项目{user}")
    for label in ("金融", "是", "是"):
        chat.press(label)
    number = _deal_number(engine, user)
    if stage == "intent":
        while (key := chat.open_question()) is not None:
            _answer(chat, key)
        chat.say(f"/advance {number}")
        chat.press("→")
    return number


def _deal_number(engine: Engine, user: int) -> int:
    with transaction(engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=user)
        [deal] = list_deals(session, team_id=member.team_id, owner_id=member.id)
        return deal.number


def _filled(engine: Engine, user: int, number: int, stage: str) -> bool:
    with transaction(engine) as session:
        member = get_member_by_telegram_id(session, telegram_user_id=user)
        deal = get_deal_by_number(session, team_id=member.team_id, number=number)
        answers = get_answers(session, deal_id=deal.id)
    required = [f.id for f in PLAYBOOK.stage(stage).fields if f.required]
    return all(flow.is_answered(answers, key) for key in required)


def _answer(chat: Driver, key: str) -> int:
    """Answer the open question as a rep on a phone would; the messages and taps it took."""
    question = flow.question_for(PLAYBOOK, key)
    if question.item is not None:
        chat.press("是")
        return 1
    spec = question.spec
    if spec.type == "choice":
        chat.press(spec.options[0].label["zh"])
        return 1
    if spec.type == "yesno":
        chat.press("是")
        return 1
    if spec.type == "multichoice":  # typed: the names, in one message
        chat.say("、".join(option.label["zh"] for option in spec.options[:2]))
        return 1
    if spec.type == "stakeholder":
        chat.say("王总 CIO 决策者 影响力大 支持")
        chat.press("否")
        return 2
    chat.say(TYPED[spec.type])
    return 1
