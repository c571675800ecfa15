"""Abuse and bad input: random updates through the fake Bot API to a running StageCoach.

Hypothesis draws batches of updates from a cast of two teams' reps and managers, a removed
member and strangers: random unicode with control characters, texts of 4,096 characters and
more, HTML and Markdown look-alikes in answers and deal names, stickers, photos, voice notes,
contacts, edited messages, forged and truncated callback data (also on other people's
messages), commands with junk arguments, group commands and chatter, channel posts, users
blocking the bot, the bot removed from, re-added to and migrated with groups.

One bot runs for the whole test; each batch is queued at once and the bot is left to settle.
After every batch: no error was logged by ``bot.*`` or ``telegram.*``, the fake Bot API
refused no request (but for the chats the batch blocked, kicked or migrated, where Telegram
refuses too), the bot made no spec violation, no seeded deal's text reached a chat that may not
read it, and the database changed only as its members may change it. Half the batches leave
out team A's owner and manager: then nothing of theirs may change at all.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.dialog.events import Incoming, Sender
from bot.dialog.router import BUTTONS, COMMANDS, Dialog
from flows.i18n import t
from tests.dialog_driver import FIXED_NOW, PLAYBOOK
from tests.fake_bot_api import BOT_USER, BOT_USERNAME, FakeBotApi
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
    S2,
    R,
    Seed,
    changed_rows,
    leaked_tokens,
    seed,
    snapshot,
    unauthorised_changes,
    watch_rejections,
)
from tests.telegram_world import TelegramWorld

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

MAX_EXAMPLES = 40  # batches per database
JOINERS = (3101, 3102, 3103)  # strangers who may hold a team B invite
EVERYONE = (A1, A2, AM, R, B1, BM, S1, S2, *JOINERS)
INTRUDERS = (A2, R, B1, BM, S1, S2, *JOINERS)  # all but team A's owner and manager
MANAGERS = {GA: AM, GB: BM}  # who may remove the bot from, or migrate, a team's group
GROUP_MEMBERS = {
    GA: {A1, A2, AM, R, S1, B1},
    GB: {B1, BM, S2, A2},
    GX: set(EVERYONE),
}
GROUP_TEAMS = {GA: {"A"}, GB: {"B"}, GX: {"A", "B"}}  # whose managers are in the group
CHANNEL = -100999
FIELDS = [f.id for stage in PLAYBOOK.stages for f in stage.fields] + ["@1", "@9", "nope"]

LOOKALIKES = [
    "<b>",
    "</i>",
    "<a href='http://x.y'>x</a>",
    '<a href="tg://user?id=1">',
    "&amp;",
    "&",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "<",
    ">",
    "</b></b>",
    "<tg-spoiler>",
    "<pre><code class='language-x'>",
    "*bold*",
    "_it_",
    "`code`",
    "```",
    "[x](y)",
    "||spoiler||",
    "\\",
    "{name}",
    "{{",
    "%s",
    "'; DROP TABLE deal; --",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u202e",
    "\u200b",
    "\ufeff",
    "＜b＞",
    "😀",
    "🏳️‍🌈",
    "𝕏",
    "字",
    "@",
    "#",
    "/",
]
ANSWERS = [
    "yes",
    "no",
    "1",
    "2",
    "0",
    "-1",
    "500k",
    "五十万",
    "1.2亿",
    "next Friday",
    "下周三",
    "2027-01-01",
    "2027-02-30",
    "Acme, Globex",
    "暂不清楚",
    "1e309",
    "NaN",
    "9" * 30,
    "restart",
    "done",
]
JUNK_ARGS = [
    "",
    "1",
    "#2",
    "²³",
    "999999999999999999999 x",
    "../../etc",
    "1 @3",
    "1 @999999999999999999",
    "1 budget",
    "1 9",
    "2 0",
    "qqa1",
    "manager",
    "admin",
    "zh",
    "en",
    "%00",
]
EXTRA_COMMANDS = ["setgroup", "START", "Help@" + BOT_USERNAME, "new@other_bot", "", "unknown", "/"]


# -- strategies ------------------------------------------------------------------------------


def texts() -> st.SearchStrategy[str]:
    long = st.tuples(
        st.sampled_from(["x", "é", "😀", "<b>", "&", "字", " ", "a\n"]),
        st.integers(3990, 4300),
    ).map(lambda p: (p[0] * p[1])[: p[1]])
    return st.one_of(
        st.text(max_size=80),  # any code point but surrogates, control characters too
        st.lists(st.sampled_from(LOOKALIKES) | st.text(max_size=4), max_size=8).map("".join),
        st.sampled_from(ANSWERS),
        long,
    )


def commands() -> st.SearchStrategy[str]:
    names = st.sampled_from([*COMMANDS, *EXTRA_COMMANDS])
    args = st.one_of(st.sampled_from(JUNK_ARGS), texts())
    return st.builds(lambda n, a: f"/{n} {a}" if a else f"/{n}", names, args)


def scripts() -> st.SearchStrategy[tuple[str, ...]]:
    """What a rep types in a row: a new deal, answers, a reason and a date, a move."""
    ref = st.sampled_from(["", "1", "2", "3", "4", "#5", "6", "7", "8", "kestrel", "osprey"])
    name = st.one_of(
        texts(),
        st.lists(st.sampled_from([*LOOKALIKES, "Acme", "Bank", "&", "Co"]), min_size=1).map(
            " ".join
        ),
    )
    answer = st.one_of(st.sampled_from(ANSWERS), texts())
    field = st.sampled_from(FIELDS)

    def typed(command: str, *rest: str) -> tuple[str, ...]:
        return (" ".join(command.split()), *rest)

    return st.one_of(
        st.builds(typed, st.just("/new"), name, name),
        st.builds(
            lambda r, a: typed(f"/update {r}", *a), ref, st.lists(answer, min_size=1, max_size=6)
        ),
        st.builds(lambda r, f, a: typed(f"/update {r} {f}", a), ref, field, answer),
        st.builds(lambda r, why: typed(f"/lost {r}", why), ref, name),
        st.builds(
            lambda r, why, when: typed(f"/pause {r}", why, when),
            ref,
            name,
            st.sampled_from(["2027-01-15", "next Friday", "tomorrow", "2020-01-01", "soon"]),
        ),
        st.builds(
            lambda r, to: typed(f"/advance {r} {to}"), ref, st.sampled_from(["", "1", "3", "7"])
        ),
        st.builds(lambda w: typed(w), st.sampled_from(["/deals", "/gaps", "/edit", "/digest"])),
    )


def forged_data(s: Seed) -> st.SearchStrategy[str]:
    """Callback data: random, valid-looking, and with ids of everyone's deals and nudges."""
    ids = [*map(str, s.deal.values()), *map(str, s.nudge.values()), *map(str, s.request.values())]
    part = st.one_of(
        st.sampled_from(ids),
        st.integers(0, 300).map(str),
        st.sampled_from(
            ["999999999999999999999", "-1", "²", "0x1", " 1", "", "01", "١", "@3", "@-1"]
        ),
        st.sampled_from(["yes", "no", "skip", "back", "stop", "done", "t.finance", "restart"]),
        st.sampled_from(["1", "7", "x", "0", "budget", "customer_background", "zh", "en"]),
        st.text(max_size=6),
    )
    prefix = st.sampled_from(
        [*(kind.TAG for kind in BUTTONS), "d:u", "d:g", "d:a", "d:l", "d:e", "d:p", "d:zz", "z"]
    )
    typical = [
        "q:",
        "d:u:",
        "a:1:0:5",
        "e:1:@3",
        "f:",
        "x:",
        "r:1:1",
        "n:1:x",
        "p:1",
        "l:xx",
        *(f"d:{v}:{s.deal[k]}" for v in "ugalep" for k in s.deal),
        *(f"n:{n}:{c}" for n in s.nudge.values() for c in "17x"),
        *(f"r:{r}:{c}" for r in s.request.values() for c in "01"),
        *(f"{c}:{s.deal[k]}:1:{to}" for c in "afx" for k in s.deal for to in (0, 2, 6)),
        *(f"p:{d}" for d in s.deal.values()),
    ]
    data = st.one_of(
        st.builds(lambda p, parts: ":".join([p, *parts]), prefix, st.lists(part, max_size=4)),
        st.sampled_from(typical),
        st.text(min_size=1, max_size=40),
    )
    return data.filter(lambda d: 1 <= len(d.encode("utf-8")) <= 64)


@dataclass(frozen=True)
class Act:
    """One thing a user does; ``where``/``n``/``m`` pick chats, messages and buttons."""

    kind: str
    user: int
    where: int = 0  # 0: the private chat; else a group the user is in (or another's chat)
    text: str = ""
    n: int = 0
    m: int = 0
    steps: tuple[str, ...] = ()  # a script: messages typed one after the other

    def __repr__(self) -> str:
        text = self.text if len(self.text) < 60 else f"{self.text[:40]}...({len(self.text)})"
        where = f"where={self.where}, n={self.n}, m={self.m}"
        steps = f", steps={[s if len(s) < 60 else s[:40] + '...' for s in self.steps]}"
        return f"Act({self.kind}, {self.user}, {text!r}, {where}{steps if self.steps else ''})"


KINDS = (
    ["script"] * 5
    + ["text"] * 3
    + ["command"] * 5
    + ["press"] * 6
    + ["forge"] * 4
    + ["media"] * 2
    + ["edit", "channel", "block", "group", "join", "service"]
)
MEDIA = ("sticker", "photo", "voice", "contact", "location", "document", "dice", "video_note")


@st.composite
def acts(draw, cast: tuple[int, ...], forged: st.SearchStrategy[str]) -> Act:
    kind = draw(st.sampled_from(KINDS))
    user = draw(st.sampled_from(cast))
    where = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    n, m = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    if kind == "text" or kind == "edit":
        text = draw(texts())
    elif kind == "command":
        text = draw(commands())
    elif kind == "forge":
        text = draw(forged)
    elif kind == "media":
        text = draw(st.sampled_from(MEDIA) | st.just("photo")) + "|" + draw(texts() | commands())
    elif kind == "channel":
        text = draw(texts() | commands())
    elif kind == "join":
        text = draw(st.sampled_from(LOOKALIKES) | st.text(min_size=1, max_size=30))
    elif kind == "press":
        text = draw(st.sampled_from(["", "", "", "", "", "other", "cut"]))
    else:
        text = ""
    steps = draw(scripts()) if kind == "script" else ()
    return Act(kind, user, where, text, n, m, steps)


@st.composite
def batches(draw, forged: st.SearchStrategy[str]) -> tuple[bool, list[Act]]:
    everyone = draw(st.booleans())
    cast = EVERYONE if everyone else INTRUDERS
    return everyone, draw(st.lists(acts(cast, forged), min_size=15, max_size=60))


# -- playing a batch -------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Stage:
    """The fake Telegram's side of the world: who blocked the bot, where the groups are."""

    world: TelegramWorld
    seed: Seed
    rejections: list
    errors: ErrorLog
    groups: dict[int, int] = field(default_factory=lambda: {g: g for g in GROUP_TITLES})
    blocked: set[int] = field(default_factory=set)  # private chats and groups without the bot
    refusing: set[int] = field(default_factory=set)  # chats Telegram may refuse in this batch
    migrated: set[int] = field(default_factory=set)
    pressers: dict[str, int] = field(default_factory=dict)  # callback query id -> user
    message_ids: itertools.count = field(default_factory=lambda: itertools.count(10**7))
    updates: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def fake(self) -> FakeBotApi:
        return self.world.fake

    def allowed_groups(self) -> dict[str, set[int]]:
        allowed: dict[str, set[int]] = {"A": set(), "B": set()}
        for origin, current in self.groups.items():
            for team in GROUP_TEAMS[origin]:
                allowed[team] |= {origin, current}
        return allowed

    # -- the users' side -----------------------------------------------------------------------

    def user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "en"}

    def group_of(self, act: Act) -> int | None:
        """A group the user is in and the bot too (by ``act.where``), or None: private."""
        if act.where == 0:
            return None
        mine = [
            current
            for origin, current in self.groups.items()
            if act.user in GROUP_MEMBERS[origin] and current not in self.blocked
        ]
        return mine[act.where % len(mine)] if mine else None

    def unblock(self, user_id: int) -> None:
        """A user who blocked the bot writes again: Telegram unblocks it first."""
        if user_id in self.blocked:
            self.blocked.discard(user_id)
            self._status(user_id, "kicked", "member", user_id)

    def _status(self, chat_id: int, old: str, new: str, by: int) -> None:
        chat = self.fake.chats[chat_id]
        chat.bot_status = new
        member = {"status": old, "user": dict(BOT_USER)}
        if old == "kicked":
            member["until_date"] = 0
        self.fake.add_update(
            {
                "my_chat_member": {
                    "chat": chat.as_dict(),
                    "from": self.user(by),
                    "date": int(time.time()),
                    "old_chat_member": member,
                    "new_chat_member": {"status": new, "user": dict(BOT_USER)},
                }
            }
        )

    def raw_message(self, chat_id: int, user_id: int, key: str = "message", **content: Any) -> None:
        """A message (or edit) the fake has no builder for, as Telegram would send it."""
        message = {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": self.fake.chats[chat_id].as_dict(),
            "from": self.user(user_id),
            **content,
        }
        self.fake.add_update({key: message})

    def play(self, act: Act) -> None:
        getattr(self, f"_{act.kind}")(act)

    def _text(self, act: Act) -> None:
        group = self.group_of(act)
        self.unblock(act.user)
        if group is None:
            self.fake.user_message(act.user, act.text or " ")
        else:
            self.fake.group_message(group, act.user, act.text or " ")

    _command = _text

    def _script(self, act: Act) -> None:
        self.unblock(act.user)
        for step in act.steps:
            self.fake.user_message(act.user, step or " ")

    def _media(self, act: Act) -> None:
        kind, _, caption = act.text.partition("|")
        file = {"file_id": f"f{act.n}", "file_unique_id": f"u{act.n}"}
        content: dict[str, Any] = {
            "sticker": {
                "sticker": {
                    **file,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                }
            },
            "photo": {"photo": [{**file, "width": 90, "height": 90}]},
            "voice": {"voice": {**file, "duration": 3}},
            "contact": {"contact": {"phone_number": "+100", "first_name": caption[:30] or "C"}},
            "location": {"location": {"latitude": 31.2, "longitude": 121.5}},
            "document": {"document": {**file, "file_name": caption[:60] or "x.pdf"}},
            "dice": {"dice": {"emoji": "🎲", "value": 1 + act.m % 6}},
            "video_note": {"video_note": {**file, "length": 240, "duration": 2}},
        }[kind]
        if kind in ("photo", "voice", "document") and caption:
            content["caption"] = caption[:1024]
        group = self.group_of(act)
        self.unblock(act.user)
        if group is None:
            self.fake.register_chat(act.user, "private", f"U{act.user}")
        self.raw_message(group or act.user, act.user, **content)

    def _edit(self, act: Act) -> None:
        group = self.group_of(act)
        self.unblock(act.user)
        if group is None:
            self.fake.register_chat(act.user, "private", f"U{act.user}")
        self.raw_message(
            group or act.user,
            act.user,
            key="edited_message",
            edit_date=int(time.time()),
            text=act.text or "x",
        )

    def _channel(self, act: Act) -> None:
        self.fake.channel_post(CHANNEL, act.text or "x")

    def _block(self, act: Act) -> None:
        if act.user not in self.blocked:
            self.fake.bot_removed(act.user, by_user_id=act.user, status="kicked")
            self.blocked.add(act.user)
            self.refusing.add(act.user)

    def _join(self, act: Act) -> None:
        code = self.seed.invites[act.n % len(self.seed.invites)]
        self.unblock(act.user)
        lang = ["en", "zh-hans", "de", "pt-br"][act.m % 4]
        self.fake.user_message(
            act.user, f"/start {code}", first_name=act.text or "x", language_code=lang
        )

    def _service(self, act: Act) -> None:
        group = self.group_of(Act(act.kind, act.user, where=1 + act.where))
        if group is None:
            return
        content = [
            {"new_chat_members": [self.user(act.user)]},
            {"left_chat_member": self.user(act.user)},
            {"new_chat_title": (act.text or "t")[:128]},
        ][act.m % 3]
        self.raw_message(group, act.user, **content)

    def _group(self, act: Act) -> None:
        """The bot removed from, re-added to or migrated with a group, by one allowed to."""
        origin = list(self.groups)[act.n % len(self.groups)]
        if MANAGERS.get(origin, act.user) != act.user:
            return
        current = self.groups[origin]
        choice = act.m % 3
        if current in self.blocked and choice != 0:
            self.blocked.discard(current)
            self._status(current, "left", "member", act.user)
        elif current not in self.blocked and choice == 0:
            self.fake.bot_removed(
                current, by_user_id=act.user, status=("kicked", "left")[act.m % 2]
            )
            self.blocked.add(current)
            self.refusing.add(current)
        elif current not in self.blocked and self.fake.chats[current].type == "group":
            new = -1_000_000_000_000 + current
            self.fake.migrate_group(current, new, by_user_id=act.user)
            self.groups[origin] = new
            self.migrated.add(current)
            self.refusing.add(current)

    def _chat_to_press_in(self, act: Act, other: bool) -> int | None:
        """The user's private chat, another user's (``other``), or one of the user's groups."""
        if other:
            chats = sorted({m["chat"]["id"] for m in self.fake.sent()} - {act.user})
            chats = [c for c in chats if c > 0]
            return chats[act.n % len(chats)] if chats else None
        return self.group_of(act) or act.user

    def _press(self, act: Act) -> None:
        """Press a real button, in the user's chat or another's; ``cut``: truncated data."""
        chat = self._chat_to_press_in(act, other=True) if act.text == "other" else act.user
        messages = [m for m in self.fake.sent(chat) if m.get("reply_markup")] if chat else []
        if not messages:
            return
        newest_first = 0 if act.n % 3 else act.n % min(len(messages), 6)
        message = messages[-1 - newest_first]
        buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
        data = buttons[act.m % len(buttons)]["callback_data"]
        if act.text == "cut":
            data = data[: 1 + act.m % len(data)]
        self._callback(act.user, data, message, chat)

    def _forge(self, act: Act) -> None:
        chat = self._chat_to_press_in(act, other=act.where == 1)
        messages = self.fake.sent(chat) if chat else []
        if messages:
            self._callback(act.user, act.text, messages[-1 - act.n % len(messages)], chat)

    def _callback(self, user: int, data: str, message: dict, chat: int) -> None:
        self.unblock(user)
        self.fake.callback(user, data, message["message_id"], chat)

    # -- after the batch -----------------------------------------------------------------------

    def check(self, everyone: bool, batch: list[Act], before) -> None:
        after = snapshot(self.world.engine)
        problems = [
            f"ERROR {r.name}: {r.getMessage()[:300]}\n{r.exc_text or ''}"
            for r in self.errors.records
        ]
        problems += [f"rejected: {r}" for r in self.rejections if not self._expected(r)]
        problems += self.fake.spec_violations
        if everyone:
            problems += unauthorised_changes(before, after)
        else:
            problems += changed_rows(before, after, set(INTRUDERS))
        allowed = self.allowed_groups()
        for message in self.fake.sent():
            chat = message["chat"]["id"]
            markup = message.get("reply_markup") or {}
            labels = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
            text = "\n".join([message.get("text", message.get("caption", "")), *labels])
            bad = leaked_tokens(text, chat, allowed)
            if bad:
                problems.append(f"{bad} reached chat {chat}: {text[:200]!r}")
        for answer in self.fake.answered_callbacks:
            presser = self.pressers.get(answer["callback_query_id"], 0)
            bad = leaked_tokens(answer.get("text", ""), presser, allowed)
            if bad:
                problems.append(f"{bad} reached {presser} in a notice: {answer}")
        if problems:
            shown = "\n".join(dict.fromkeys(problems))  # once each, in order
            self.failures.append(
                f"batch ({'everyone' if everyone else 'intruders only'}): {batch}\n{shown}"
            )

    def _expected(self, rejection) -> bool:
        """Telegram refuses posts to a chat that blocked or removed the bot, or migrated."""
        chat = rejection.params.get("chat_id")
        if rejection.status == 403:
            return chat in self.refusing
        migrated = (rejection.parameters or {}).get("migrate_to_chat_id")
        return rejection.status == 400 and migrated is not None and chat in self.migrated

    async def run(self, everyone: bool, batch: list[Act]) -> None:
        if self.failures:
            return  # one failing batch is reported; the bot's state is suspect after it
        self.errors.records.clear()
        self.rejections.clear()
        self.refusing = set(self.blocked)
        before = snapshot(self.world.engine)
        for act in batch:
            self.play(act)
        try:
            await self.world.settle()
        except AssertionError:
            self.failures.append(f"batch: {batch}\nthe bot stopped answering:\n{stuck(self.world)}")
            return
        self.check(everyone, batch, before)


def stuck(world: TelegramWorld) -> str:
    """What the bot is waiting for, when it stopped answering (for the failure message)."""
    adapter = world.application.bot_data["adapter"]
    lines = [
        f"updates in flight: {adapter.in_flight}, queued: {world.application.update_queue.qsize()}"
    ]
    for task in asyncio.all_tasks():
        coro, chain = task.get_coro(), []
        while coro is not None:
            frame = getattr(coro, "cr_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_filename.split('/')[-1]}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None)
        if any(link.startswith(("application.py", "delivery.py")) for link in chain):
            lines.append(f"{task.get_name()}: {' -> '.join(chain)}")
    return "\n".join(lines)


async def stop(world: TelegramWorld) -> None:
    """Stop the bot. If a delivery deadlocked (a bug a test reports), free its chat locks
    first, so that the Application shuts down and closes its connections."""
    adapter = world.application.bot_data["adapter"]
    waited = 0.0
    while adapter.in_flight and waited < 10:
        if waited >= 2:
            for lock in getattr(adapter.delivery, "_locks", {}).values():
                if lock.locked():
                    lock.release()
        await asyncio.sleep(0.1)
        waited += 0.1
    await world.stop()


@dataclass
class Bot:
    world: TelegramWorld
    seeded: Seed
    rejections: list
    errors: ErrorLog

    @property
    def fake(self) -> FakeBotApi:
        return self.world.fake

    def problems(self) -> list[str]:
        return [f"ERROR {r.name}: {r.getMessage()[:300]}" for r in self.errors.records] + [
            f"rejected: {r}" for r in self.rejections
        ]


@asynccontextmanager
async def running_bot(engine, *, invites: int) -> AsyncIterator[Bot]:
    """The bot on a seeded database against the fake Bot API, recording its errors and every
    request the fake rejected."""
    errors = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("bot", "telegram")]
    for logger in loggers:
        logger.addHandler(errors)
    try:
        async with FakeBotApi(rate_limits=False) as fake:
            rejections = watch_rejections(fake)
            seeded = seed(engine, FIXED_NOW, invites=invites)
            for chat, title in GROUP_TITLES.items():
                fake.register_chat(chat, "group", title)
            world = await TelegramWorld(fake, engine, limiter=None).start()
            try:
                yield Bot(world, seeded, rejections, errors)
            finally:
                await stop(world)
    finally:
        for logger in loggers:
            logger.removeHandler(errors)


async def test_random_updates_break_nothing_and_change_only_what_they_may(engine):
    loop = asyncio.get_running_loop()
    async with running_bot(engine, invites=20) as bot:
        fake, seeded = bot.fake, bot.seeded
        stage = Stage(bot.world, seeded, bot.rejections, bot.errors)
        original_add = fake.add_update

        def add_update(update: dict[str, Any]) -> int:
            stage.updates += 1
            query = update.get("callback_query")
            if query:
                stage.pressers[query["id"]] = query["from"]["id"]
            return original_add(update)

        fake.add_update = add_update  # records who pressed, for the notices they get

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the bot keeps its state
            database=None,
        )
        @given(batch=batches(forged_data(seeded)))
        def fuzz(batch: tuple[bool, list[Act]]) -> None:
            future = asyncio.run_coroutine_threadsafe(stage.run(*batch), loop)
            future.result(timeout=300)

        await asyncio.to_thread(fuzz)
    assert stage.failures == [], stage.failures[0]
    assert stage.updates >= MAX_EXAMPLES * 15


# -- what the fuzz found, one by one ----------------------------------------------------------


@pytest.fixture
async def bot(engine):
    async with running_bot(engine, invites=2) as running:
        yield running


async def test_the_bot_removed_from_a_group_while_it_answers_there_keeps_working(bot):
    """A 403 for a group reply must not deadlock the chat's delivery lock."""
    bot.fake.group_message(GX, AM, "/help")  # a member's command: the bot answers in the group
    bot.fake.bot_removed(GX, by_user_id=AM)  # ... but is removed before the answer goes out
    bot.fake.user_message(A1, "/help")
    await bot.fake.wait_for(lambda: bot.world.texts(A1), timeout=10)
    await bot.world.settle()
    assert [p for p in bot.problems() if "403" not in p] == []


async def test_a_button_pressed_under_someone_elses_message_shows_them_nothing(bot):
    """A callback whose message is in another user's private chat (only a forged update can
    say so) must not answer into that chat."""
    await bot.world.say(A1, "/help")
    message = bot.fake.sent(A1)[-1]
    for verb in ("g", "u", "e"):
        data = f"d:{verb}:{bot.seeded.deal['B1']}"
        bot.fake.callback(B1, data, message["message_id"], chat_id=A1)
    await bot.world.settle()
    texts = [m.get("text", "") for m in bot.fake.sent(A1)]
    assert [text for text in texts if "QQB1" in text] == []
    assert bot.problems() == []


async def test_a_double_tapped_resume_button_edits_its_message_once(bot):
    """The second tap of "Resume now" arrives before the first one's edit removed the button."""
    await bot.world.say(A1, f"/pause {bot.seeded.number['A1P']}")
    message, button = bot.world.find_button(A1, "Resume now")
    for _ in range(2):
        bot.fake.callback(A1, button["callback_data"], message["message_id"])
    await bot.world.settle()
    assert bot.problems() == []


def test_nul_characters_in_names_and_answers_are_no_error(engine, caplog):
    """Telegram text may hold U+0000, which PostgreSQL text and JSONB cannot store."""
    seeded = seed(engine, FIXED_NOW, invites=1)
    dialog = Dialog(engine, PLAYBOOK, clock=lambda: FIXED_NOW)

    def say(user: int, text: str, name: str = "Ann") -> list[str]:
        sender = Sender(user_id=user, name=name, language_code="en")
        return [reply.text for reply in dialog.handle(Incoming(sender, text=text)).replies]

    number = seeded.number["A1"]
    with caplog.at_level(logging.ERROR):
        said = [
            *say(A1, "/new"),
            *say(A1, "Acme\x00 Bank"),
            *say(A1, "Training\x00 2027"),
            *say(A1, f"/update {number} customer_background"),
            *say(A1, "Head\x00office"),
            *say(3101, f"/start {seeded.invites[0]}", name="Zoë\x00"),
        ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert t("en", "dialog.error") not in said
