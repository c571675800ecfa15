"""Access control: every command and every button, pressed by someone who may not use it.

The intruders: a rep and a manager of another team, a rep of the same team for someone else's
deal, a removed member, an unknown user, and members writing in a group that is not their
team's. Each tries every command (with arguments naming the victim's deal) and every button
kind (forged with the victim's deal, nudge and request ids). Nothing may leak (no token of a
deal they may not read appears in what they or any group receive) and the database is
unchanged but for their own rows.

The full matrix runs on the transport-neutral Dialog; a representative subset runs end to end
through the fake Bot API. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from bot.dialog import refusals
from bot.dialog.events import Incoming, Response, Sender
from bot.dialog.router import BUTTONS, COMMANDS, DEAL_VERBS, Dialog
from bot.dialog.writer import DialogConfig
from flows.i18n import t
from storage.conversations import clear_conversation, get_conversation
from storage.db import make_engine, transaction, upgrade
from storage.models import Member
from tests.dialog_driver import FIXED_NOW, PLAYBOOK
from tests.fake_bot_api import BOT_USERNAME
from tests.intrusion import (
    A1,
    A2,
    AM,
    B1,
    BM,
    GA,
    GB,
    GROUP_TITLES,
    GX,
    S1,
    R,
    Seed,
    changed_rows,
    leaked_tokens,
    seed,
    snapshot,
    tokens_in,
    watch_rejections,
)
from tests.telegram_world import TelegramWorld

NOW = FIXED_NOW
ALLOWED_GROUPS = {"A": {GA}, "B": {GB}}
FOLLOW_UPS = ("Because the customer said so", "2027-05-01", "yes")


@dataclass(frozen=True)
class Intruder:
    name: str
    user: int
    chat: int | None = None  # a group chat; None: the private chat

    @property
    def chat_id(self) -> int:
        return self.chat if self.chat is not None else self.user


INTRUDERS = [
    Intruder("rep_of_another_team", B1),
    Intruder("manager_of_another_team", BM),
    Intruder("rep_of_the_same_team", A2),
    Intruder("removed_member", R),
    Intruder("unknown_user", S1),
    Intruder("owner_in_another_teams_group", A1, GB),
    Intruder("manager_in_another_teams_group", AM, GB),
    Intruder("manager_in_a_group_of_no_team", AM, GX),
]


@dataclass(frozen=True)
class Case:
    kind: str  # "command" or "button"
    name: str  # the command, or the button's prefix (for "d": the verb too)
    payload: str  # the text typed, or the callback data
    deal: str = "A1"  # the seeded deal (SeedDeal.key) it is about


def command_cases(s: Seed) -> list[Case]:
    """Every command, with arguments naming the victim's deals (A1's, and R's former one)."""
    n = s.number["A1"]
    # Typed lower case and in part, so an echo ("no deal matching ...") is no token.
    refs = [str(n), f"#{n}", "qqa1nam", "qqa1cus", "kestrel", str(s.number["R"]), "qqrnam"]
    args = {
        "start": ["", "junkcode", "../../etc"],
        "help": [""],
        "new": [""],
        "deals": [""],
        "update": ["", *refs, f"{n} customer_background", f"{n} @0", f"{n} @9", "qqa1pna"],
        "edit": ["", *refs],
        "gaps": ["", *refs, "qqa1lna"],
        "advance": ["", *refs, f"{n} 3", f"{n} 1", f"{n} 7", "qqa1lna"],
        "lost": ["", *refs],
        "skip": [""],
        "back": [""],
        "cancel": [""],
        "lang": ["", "en", "../../etc"],
        "tz": ["", "Europe/Berlin", "../../etc/passwd", "UTC" * 30],
        "invite": ["", "manager", "admin"],
        "pause": ["", *refs, "qqa1pna"],
        "digest": [""],
        "note": ["", *refs, f"{n} 预算大概300万，竞争对手有用友"],
    }
    return [
        Case("command", name, f"/{name} {arg}".strip())
        for name, values in args.items()
        for arg in values
    ]


def button_cases(s: Seed, victim_seq: int) -> list[Case]:
    """Every button kind, forged with the ids of the victim's deals, nudge and request."""
    a1, paused, former = s.deal["A1"], s.deal["A1P"], s.deal["R"]
    nudge, request = s.nudge["A1"], s.request["A1"]
    data = {
        "q": [f"q:{victim_seq}:yes", f"q:{victim_seq}:skip", f"q:{victim_seq}:stop"],
        "a": [f"a:{a1}:1:2", f"a:{a1}:1:0", f"a:{a1}:1:6"],
        "e": [f"e:{a1}:customer_background", f"e:{a1}:@0", f"e:{a1}:@1"],
        "l": ["l:zh", "l:en"],
        "f": [f"f:{a1}:1:2", f"f:{a1}:1:6"],
        "x": [f"x:{a1}:1:2"],
        "r": [f"r:{request}:1", f"r:{request}:0"],
        "n": [f"n:{nudge}:1", f"n:{nudge}:7", f"n:{nudge}:x"],
        "c": [f"c:{victim_seq}:s:0", f"c:{victim_seq}:k:1", f"c:{victim_seq}:f:1"],
        "m": [f"m:{victim_seq}:{a1}", f"m:{victim_seq}:0"],
    }
    cases = [Case("button", kind, d) for kind, values in data.items() for d in values]
    cases += [Case("button", "p", f"p:{paused}", "A1P"), Case("button", "p", f"p:{former}", "R")]
    for kind in ("a", "f", "x"):
        cases.append(Case("button", kind, f"{kind}:{former}:1:2", "R"))
    cases.append(Case("button", "e", f"e:{former}:@1", "R"))
    for verb in DEAL_VERBS:
        for key in ("A1", "A1P", "A1L", "R"):
            cases.append(Case("button", f"d:{verb}", f"d:{verb}:{s.deal[key]}", key))
    return cases


def covered(cases: list[Case]) -> tuple[set[str], set[str], set[str]]:
    commands = {c.name for c in cases if c.kind == "command"}
    buttons = {c.name.split(":")[0] for c in cases if c.kind == "button"}
    verbs = {c.name.split(":")[1] for c in cases if c.name.startswith("d:")}
    return commands, buttons, verbs


# -- the dialog ----------------------------------------------------------------------------


class Room:
    """Both teams on one database, and the dialog they talk to."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.seed = seed(engine, NOW)
        config = DialogConfig(bot_username=BOT_USERNAME)
        self.dialog = Dialog(engine, PLAYBOOK, clock=lambda: NOW, config=config)
        # The victim is in the middle of answering a question about the deal.
        self.send(A1, A1, text=f"/update {self.seed.number['A1']}")
        with transaction(engine) as session:
            conversation = get_conversation(session, member_id=self.seed.member[A1])
            self.victim_seq = conversation.state["seq"]
            assert conversation.question is not None

    def send(
        self, user: int, chat: int, *, text: str | None = None, button: str | None = None
    ) -> Response:
        private = chat == user
        return self.dialog.handle(
            Incoming(
                Sender(user_id=user, name="Intruder <b>&", language_code="en"),
                text=text,
                button=button,
                chat_type="private" if private else "group",
                chat_id=chat,
                chat_title="" if private else GROUP_TITLES.get(chat, "group"),
            )
        )

    def cases(self) -> list[Case]:
        return command_cases(self.seed) + button_cases(self.seed, self.victim_seq)

    def reset(self, user: int) -> None:
        """Forget the actor's own conversation, so every case starts from idle."""
        with transaction(self.engine) as session:
            for member in session.exec(select(Member).where(Member.telegram_user_id == user)):
                clear_conversation(session, member_id=member.id)


def said(response: Response, chat: int) -> list[tuple[int, str]]:
    """(chat, text) of everything a response shows: replies, their buttons, notice, edit."""
    shown = []
    for reply in response.replies + ([response.edited] if response.edited else []):
        labels = " | ".join(b.label for row in reply.buttons for b in row)
        shown.append((reply.chat_id or chat, f"{reply.text}\n{labels}"))
    if response.notice:
        shown.append((chat, response.notice))
    return shown


def leaks(shown: list[tuple[int, str]], intruder: Intruder) -> list[str]:
    found = []
    for chat, text in shown:
        bad = leaked_tokens(text, chat, ALLOWED_GROUPS)
        if bad:
            found.append(f"{bad} reached chat {chat}: {text[:300]!r}")
    return found


def test_every_command_and_button_is_covered(sqlite_engine):
    room = Room(sqlite_engine)
    commands, buttons, verbs = covered(room.cases())
    assert commands == set(COMMANDS), "a command without an access test"
    assert buttons == {kind.TAG for kind in BUTTONS}, "a button kind without an access test"
    assert verbs == set(DEAL_VERBS), "a deal verb without an access test"


@pytest.mark.parametrize("intruder", INTRUDERS, ids=lambda i: i.name)
def test_an_intruder_sees_and_changes_nothing(engine, intruder, caplog):
    room = Room(engine)
    problems = []
    for case in room.cases():
        room.reset(intruder.user)
        before = snapshot(engine)
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            if case.kind == "command":
                shown = said(
                    room.send(intruder.user, intruder.chat_id, text=case.payload), intruder.chat_id
                )
            else:
                shown = said(
                    room.send(intruder.user, intruder.chat_id, button=case.payload),
                    intruder.chat_id,
                )
            # Whatever the intruder was asked next, answer it: a reason, a date, a yes.
            for text in FOLLOW_UPS:
                shown += said(
                    room.send(intruder.user, intruder.chat_id, text=text), intruder.chat_id
                )
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        changed = changed_rows(before, snapshot(engine), {intruder.user})
        for problem in [*leaks(shown, intruder), *changed, *errors]:
            problems.append(f"{case.payload!r}: {problem}")
    assert problems == [], "\n".join(problems)


# -- the forgeries are real: the rightful member's press is accepted -------------------------


def _fresh_room(folder: Path) -> Room:
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'room.db'}")
    upgrade(engine)
    return Room(engine)


def rightful_user(case: Case) -> int:
    """Who may press it: the owner, or a manager (forcing, deciding, the removed rep's deal)."""
    return AM if case.name in ("f", "r") or case.deal == "R" else A1


# A note that names the victim's deal (its card), and one that names none (which deal?).
NOTE_BUTTONS = {
    "c": "/note QQA1CUST 预算大概300万，竞争对手有用友",
    "m": "/note 预算大概300万，竞争对手有用友",
}


def test_each_forged_button_is_accepted_from_its_rightful_member(tmp_path):
    """So a refusal in the matrix is the access check at work, not malformed data."""
    probe = _fresh_room(tmp_path / "probe")
    cases = [c for c in probe.cases() if c.kind == "button"]
    probe.engine.dispose()
    refused = []
    for n, case in enumerate(cases):
        room = _fresh_room(tmp_path / str(n))
        user = rightful_user(case)
        payload = case.payload
        if case.name in NOTE_BUTTONS:  # pressed under a note's card or its deal question
            room.send(user, user, text=NOTE_BUTTONS[case.name])
            with transaction(room.engine) as session:
                seq = get_conversation(session, member_id=room.seed.member[user]).state["seq"]
            payload = re.sub(r"^(\w):\d+:", rf"\g<1>:{seq}:", payload)
        response = room.send(user, user, button=payload)
        if response.notice == t("en", "dialog.old_button"):
            refused.append(case.payload)
        room.engine.dispose()
    assert refused == []


def test_the_victims_data_does_reach_the_victim(sqlite_engine):
    """The leak check would see the tokens if they were shown."""
    room = Room(sqlite_engine)
    shown = said(room.send(A1, A1, text=f"/gaps {room.seed.number['A1']}"), A1)
    text = "\n".join(t for _, t in shown)
    assert {"QQA1NAME", "QQA1CUST"} <= set(tokens_in(text))
    shown = said(
        room.send(A1, A1, text=f"/update {room.seed.number['A1']} customer_background"), A1
    )
    assert "QQA1ANSWER" in "\n".join(t for _, t in shown)
    shown = said(room.send(AM, AM, button=f"d:g:{room.seed.deal['A1']}"), AM)
    assert "QQA1NAME" in "\n".join(t for _, t in shown)
    assert leaks(shown, Intruder("manager", AM)) == []


# -- groups --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "group"),
    [(BM, GA), (AM, GB)],
    ids=["team_b_manager_in_team_a_group", "team_a_manager_in_team_b_group"],
)
def test_a_manager_cannot_take_over_another_teams_group(engine, user, group):
    """/setgroup in a group linked to another team must not unlink that team's group."""
    room = Room(engine)
    before = snapshot(engine)
    response = room.send(user, group, text="/setgroup")
    assert leaks(said(response, group), Intruder("manager", user, group)) == []
    problems = changed_rows(before, snapshot(engine), {user})
    assert problems == []


@pytest.mark.parametrize("user", [A1, R, S1, B1], ids=["rep", "removed", "stranger", "other"])
def test_only_a_manager_of_the_team_links_a_group(engine, user):
    room = Room(engine)
    for group in (GA, GB, GX):
        before = snapshot(engine)
        response = room.send(user, group, text="/setgroup@" + BOT_USERNAME)
        assert leaks(said(response, group), Intruder("x", user, group)) == []
        assert changed_rows(before, snapshot(engine), set()) == []


# -- end to end, through the fake Bot API ----------------------------------------------------


E2E_COMMANDS = ("/deals", "/gaps 1", "/update qqa1nam", "/advance 1 3", "/lost kestrel", "/pause 1")


def e2e_buttons(s: Seed) -> list[str]:
    a1 = s.deal["A1"]
    return [
        f"d:g:{a1}",
        f"d:u:{a1}",
        f"a:{a1}:1:2",
        f"e:{a1}:customer_background",
        f"f:{a1}:1:2",
        f"x:{a1}:1:2",
        f"r:{s.request['A1']}:1",
        f"n:{s.nudge['A1']}:x",
        f"p:{s.deal['A1P']}",
    ]


async def test_intruders_end_to_end(engine, fake, caplog):
    rejections = watch_rejections(fake)
    seeded = seed(engine, NOW)
    for chat, title in GROUP_TITLES.items():
        fake.register_chat(chat, "group", title)
    world = await TelegramWorld(fake, engine, limiter=None).start()
    problems = []
    try:
        with caplog.at_level(logging.ERROR):
            for intruder in INTRUDERS:
                before = snapshot(engine)
                group = {"chat_id": intruder.chat, "chat_type": "group"} if intruder.chat else {}
                await world.say(intruder.user, "/help", **group)
                message = fake.sent(intruder.chat_id)[-1]
                for text in E2E_COMMANDS:
                    fake.user_message(intruder.user, text, **group)
                for data in e2e_buttons(seeded):
                    fake.callback(intruder.user, data, message["message_id"], intruder.chat)
                for text in FOLLOW_UPS:
                    fake.user_message(intruder.user, text, **group)
                await world.settle()
                for problem in changed_rows(before, snapshot(engine), {intruder.user}):
                    problems.append(f"{intruder.name}: {problem}")
    finally:
        refused = list(rejections)  # not the stop: its last getUpdates ends the long poll (409)
        await world.stop()
    for message in fake.sent():
        chat = message["chat"]["id"]
        labels = [
            b["text"]
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row
        ]
        text = "\n".join([message.get("text", message.get("caption", "")), *labels])
        bad = leaked_tokens(text, chat, ALLOWED_GROUPS)
        problems += [f"{bad} reached chat {chat}: {text[:300]!r}"] if bad else []
    # Every forged press in a private chat was answered; a member's was refused as out of date.
    presses = len(e2e_buttons(seeded))
    private = [i for i in INTRUDERS if i.chat is None]
    assert len(fake.answered_callbacks) == len(private) * presses
    refused_presses = [
        a for a in fake.answered_callbacks if a.get("text") == t("en", "dialog.old_button")
    ]
    assert len(refused_presses) == len([i for i in private if i.user in (A2, B1, BM)]) * presses
    for answer in fake.answered_callbacks:
        problems += [f"toast {answer}"] if tokens_in(answer.get("text", "")) else []
    problems += [f"ERROR log: {r.getMessage()}" for r in caplog.records if r.levelno >= 40]
    problems += [f"rejected: {r}" for r in refused]
    assert fake.spec_violations == []
    assert problems == [], "\n".join(problems)


def test_forged_presses_are_counted_and_logged_once_a_minute_per_member(caplog):
    clock = [1000.0]
    forged = refusals.Refusals(logging.WARNING, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="bot.dialog.refusals"):
        for deal_id in range(50):
            forged.note(7, f"asked for deal {deal_id}")
        forged.note(8, "asked for deal 1")
        clock[0] += 61
        forged.note(7, "asked for deal 99")
    assert [r.getMessage() for r in caplog.records] == [
        "member 7: asked for deal 0",
        "member 8: asked for deal 1",
        "member 7: asked for deal 99 (and 49 more in the last minute)",
    ]
