"""Crash recovery harness: StageCoach as a separate process, SIGKILLed again and again.

The bot runs as ``python -m bot run`` against a :class:`CrashFake` (the suite's fake Bot API,
serving across restarts: an update not confirmed with ``offset`` before a kill is delivered
again, as Telegram does). A :class:`Supervisor` kills the bot at seeded random points given by
:class:`Plan` and starts the next process; :class:`Rep` s walk scripted conversations, deciding
every step from the conversation row in the database (as ``tests/test_telegram.py`` does) and
acting only on what the fake server shows them, like a rep on a phone.

Restarts are kept short by a fork server: one helper process imports the bot's modules once and
forks every bot process from there, which then runs the ``stagecoach run`` command exactly as
``python -m bot run`` does (settings, migrations, polling, ticks: everything after the imports).
``STAGECOACH_CRASH_COLD=1`` starts each process with ``python -m bot run`` instead (slower: the
imports alone take 1-3 s on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
import signal
import socket
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web
from sqlalchemy import Engine, text, update
from sqlmodel import Session, col, select

from bot.dialog.events import Incoming, Response, Sender
from bot.dialog.router import Dialog
from bot.dialog.state import IDLE, NEW_CUSTOMER, NEW_NAME, QUESTION
from flows import engine as flow
from flows.i18n import t
from flows.playbook import Playbook, load_playbook
from flows.stakeholder import PARTS
from storage.answers import get_answers, list_answer_changes
from storage.db import transaction
from storage.models import Conversation, Deal, DigestRun, Nudge, ProcessedUpdate
from storage.nudges import CLAIM_TIMEOUT, schedule_nudge
from storage.teams import add_member, create_team
from tests.fake_bot_api import ApiError, FakeBotApi

PLAYBOOK: Playbook = load_playbook()
NUDGE_TITLE = t("en", "nudge.title")  # as sent (HTML)
NUDGE_BUTTON = re.compile(r"^n:(\d+):")
STARTUP_METHODS = frozenset({"getMe", "setMyCommands", "deleteWebhook"})
REPLY_METHODS = frozenset({"sendMessage", "editMessageText", "answerCallbackQuery"})
SENDS = ("nudge", "photo", "digest-text")  # what nudge and digest delivery sends, by kind
TYPED = {
    "text": "Head office training centre",
    "number": "120",
    "money": "500k",
    "date": "2027-03-15",
    "list": "Acme, Globex",
}
STAKEHOLDER = {
    "name": "Wang",
    "title": "CIO",
    "role": "Decision maker",
    "influence": "High",
    "attitude": "+2",
    "more": "No",
}
PROMPTS = {
    NEW_CUSTOMER: (t("en", "dialog.ask_customer"), t("en", "dialog.resume_new_customer")),
    NEW_NAME: (t("en", "dialog.ask_deal_name", customer="\0").split("\0")[0],),
}
RESUME_NAME = t("en", "dialog.resume_new_name")
ZYGOTE_CODE = r"""
import os, select, sys, traceback
import bot.cli.main  # noqa: F401 - every bot process is forked after these imports


def run_bot(url, log):
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["TELEGRAM_API_BASE_URL"] = url
        sys.argv = ["stagecoach", "run"]
        import runpy

        runpy.run_module("bot", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


os.write(1, b"ready\n")
buffer = b""
while True:
    readable, _, _ = select.select([0], [], [], 0.01)
    if readable:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            url, log = line.decode().split(" ", 1)
            pid = os.fork()
            if pid == 0:
                run_bot(url, log)
            os.write(1, b"pid %d\n" % pid)
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        os.write(1, b"exit %d %d\n" % (pid, os.waitstatus_to_exitcode(status)))
"""
# Which process made the request being handled (by the port it talks to).
CURRENT_PROCESS: contextvars.ContextVar[BotProcess | None] = contextvars.ContextVar(
    "current_process", default=None
)


class Killed(Exception):
    """The test gave up: a property failed badly enough that going on makes no sense."""


# -- what a rep sees and does -------------------------------------------------------------------


class State(NamedTuple):
    """A rep's conversation as stored: the mode and, in a question, which one (and its part)."""

    mode: str
    key: str | None = None
    part: str | None = None
    seq: int = 0
    deal_id: int | None = None

    @property
    def step(self) -> tuple[str, str | None, str | None]:
        return self.mode, self.key, self.part

    def show(self) -> str:
        return "/".join(p for p in self.step if p)


def read_state(session: Session, member_id: int) -> State:
    conversation = session.get(Conversation, member_id)
    data = conversation.state if conversation else {}
    mode = data.get("mode", IDLE)
    key = data.get("key") if mode == QUESTION else None
    part = data.get("part") if mode == QUESTION else None
    return State(mode, key, part, data.get("seq", 0), data.get("deal_id"))


@dataclass(frozen=True)
class Action:
    kind: str  # "text" or "button"
    value: str  # the text, or the button's label
    answers: str | None = None  # the field saved by this step, if any


def decide(state: State, customer: str, deal_name: str) -> Action:
    """What a rep does in ``state``: the scripted answer to the open question."""
    if state.mode == IDLE:
        return Action("text", "/new")
    if state.mode == NEW_CUSTOMER:
        return Action("text", customer)
    if state.mode == NEW_NAME:
        return Action("text", deal_name)
    assert state.mode == QUESTION, state
    question = flow.question_for(PLAYBOOK, state.key)
    if question.item is not None:
        return Action("button", "Yes", state.key)
    spec = question.spec
    if spec.type == "stakeholder":
        kind = "text" if state.part in ("name", "title") else "button"
        saves = state.key if state.part == PARTS[-1].id else None
        return Action(kind, STAKEHOLDER[state.part], saves)
    if spec.type == "choice":
        return Action("button", spec.options[0].label["en"], state.key)
    if spec.type == "yesno":
        return Action("button", "Yes", state.key)
    return Action("text", TYPED[spec.type], state.key)


def pick_button(buttons: list[tuple[str, str]], label: str, seq: int) -> str:
    """The callback data of the question's button labelled ``label`` (exact match first)."""
    live = [(text_, data) for text_, data in buttons if data.startswith(f"q:{seq}:")]
    for match in (
        lambda s: s == label,
        lambda s: s.startswith(label),
        lambda s: label in s,
    ):
        found = [data for text_, data in live if match(text_)]
        if found:
            return found[0]
    raise AssertionError(f"no button {label!r} for question {seq} among {buttons}")


# What the bot says when it takes an answer for the previous one sent again (bot/dialog/resends.py).
RESENT_NOTICE = t("en", "dialog.resent", text="\x00").split("\x00")[0]


def _looks(message: dict[str, Any]) -> tuple:
    """What a message shows: its text and its buttons."""
    return message.get("text", ""), tuple(message_buttons(message))


def message_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data", ""))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


def nudge_ids(message: dict[str, Any] | None) -> list[int]:
    ids = []
    for _, data in message_buttons(message or {}):
        found = NUDGE_BUTTON.match(data)
        if found and int(found.group(1)) not in ids:
            ids.append(int(found.group(1)))
    return ids


def prompt_text_ok(state: State, message: dict[str, Any], deal_name: str) -> bool:
    """Whether a question message shows the question ``state`` is at, for the right deal."""
    shown = message.get("text", "")
    if deal_name not in shown:
        return False
    question = flow.question_for(PLAYBOOK, state.key)
    if question.item is not None:
        return question.item.text["en"] in shown
    if question.spec.type == "stakeholder":
        return state.part == "more" or t("en", f"stakeholder.prompt_{state.part}") in shown
    return question.spec.question["en"] in shown


# -- the reference walk, without Telegram or crashes ---------------------------------------------


@dataclass
class Golden:
    steps: list[tuple[str, str | None, str | None]]  # from NEW_CUSTOMER to IDLE
    answers: dict[str, Any]
    changes: Counter  # (key, old, new) as JSON text

    def after(self, step: tuple) -> tuple:
        index = self.steps.index(step)
        return self.steps[(index + 1) % len(self.steps)]


def change_key(key: str, old: Any, new: Any) -> tuple[str, str, str]:
    return key, json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True)


def golden_walk(engine: Engine) -> Golden:
    """One deal walked through the dialog in-process: the steps and answers a crash must not
    change."""
    now = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    with transaction(engine) as session:
        team = create_team(session, name="Golden", now=now)
        member = add_member(
            session,
            team_id=team.id,
            telegram_user_id=1,
            display_name="Gold",
            role="rep",
            language="en",
            timezone="Asia/Shanghai",
            now=now,
        )
        member_id = member.id
    dialog = Dialog(engine, PLAYBOOK, clock=lambda: now)
    sender = Sender(user_id=1, name="Gold", language_code="en")
    steps: list[tuple] = []
    response = Response()
    while True:
        with Session(engine) as session:
            state = read_state(session, member_id)
        if state.mode == IDLE and steps:
            steps.append(state.step)
            break
        if state.mode != IDLE:
            steps.append(state.step)
        action = decide(state, "Golden customer", "Golden deal")
        if action.kind == "text":
            response = dialog.handle(Incoming(sender, text=action.value))
        else:
            buttons = [
                (b.label, b.data)
                for reply in response.replies
                for row in reply.buttons
                for b in row
            ]
            data = pick_button(buttons, action.value, state.seq)
            response = dialog.handle(Incoming(sender, button=data))
        assert len(steps) < 80, steps
    with Session(engine) as session:
        deal = session.exec(select(Deal).where(Deal.owner_id == member_id)).one()
        answers = get_answers(session, deal_id=deal.id)
        changes = Counter(
            change_key(c.key, c.old_value, c.new_value)
            for c in list_answer_changes(session, deal_id=deal.id)
        )
    return Golden(steps, answers, changes)


# -- the fake Bot API, serving many processes ----------------------------------------------------


class CrashFake(FakeBotApi):
    """The fake server with a port per bot process and hooks around every method.

    ``observer.before`` runs when a request arrived (not yet accepted), ``observer.after`` when
    it was accepted and before the answer goes back: a kill there is "Telegram has it, the bot
    never learns".
    """

    def __init__(self) -> None:
        super().__init__(rate_limits=False)
        self.observer: Supervisor | None = None
        self.process_of_port: dict[int, BotProcess] = {}
        self.sites: dict[int, web.BaseSite] = {}
        self.chat_messages: dict[int, list[int]] = defaultdict(list)
        self.listeners: dict[int, asyncio.Event] = {}
        for name, handler in list(self._handlers.items()):
            self._handlers[name] = self._hooked(name, handler)

    async def add_site(self) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        port = sock.getsockname()[1]
        self.sites[port] = site
        return port

    async def drop_site(self, port: int) -> None:
        site = self.sites.pop(port, None)
        if site is not None:
            await site.stop()

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/bot"

    async def _handle(self, request: web.Request) -> web.Response:
        process = self.process_of_port.get(request.url.port or 0)
        token = CURRENT_PROCESS.set(process)
        try:
            return await super()._handle(request)
        except ConnectionResetError:
            # A killed bot's request that never fully arrived: not accepted, nobody to answer.
            return web.Response(status=400)
        finally:
            CURRENT_PROCESS.reset(token)

    def _hooked(self, method: str, handler):
        async def hooked(params: dict[str, Any]) -> Any:
            process = CURRENT_PROCESS.get()
            observer = self.observer
            kind = observer.kind_of(method, params) if observer else "other"
            if process is not None:
                process.inflight[kind] += 1
            try:
                if observer is not None and process is not None:
                    await observer.before(method, kind, params, process)
                result = await handler(params)
                if observer is not None and process is not None:
                    await observer.after(method, kind, params, result, process)
                return result
            finally:
                if process is not None:
                    process.inflight[kind] -= 1
                self._notify(params.get("chat_id"))

        return hooked

    def _notify(self, chat_id: Any) -> None:
        if isinstance(chat_id, int) and chat_id in self.listeners:
            self.listeners[chat_id].set()
        elif chat_id is None:
            for event in self.listeners.values():
                event.set()

    def _post(self, chat, **content: Any) -> dict[str, Any]:
        message = super()._post(chat, **content)
        self.chat_messages[chat.id].append(message["message_id"])
        return message

    def bot_messages(self, chat_id: int, after: int = 0) -> list[dict[str, Any]]:
        """The bot's messages in a chat with an id above ``after``, oldest first (live dicts)."""
        return [
            self._messages[(chat_id, mid)] for mid in self.chat_messages[chat_id] if mid > after
        ]

    def last_message_id(self, chat_id: int) -> int:
        return self._last_message_id.get(chat_id, 0)

    def pending_update_ids(self) -> set[int]:
        return {u["update_id"] for u in self._updates}


# -- bot processes --------------------------------------------------------------------------------


class Forked:
    """A bot process forked by the :class:`ForkServer` (like asyncio's Process, what we use)."""

    def __init__(self, pid: int, exited: asyncio.Future):
        self.pid = pid
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """Runs ``ZYGOTE_CODE``: imports the bot once, forks a bot process per ``start``."""

    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self._spawned: asyncio.Queue[int] = asyncio.Queue()
        self._exits: dict[int, asyncio.Future] = {}
        self._ready = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def open(self) -> None:
        log = open(self.workdir / "fork-server.log", "wb")  # noqa: SIM115
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                ZYGOTE_CODE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=self.workdir,
                env=self.env,
            )
        finally:
            log.close()
        self._reader = asyncio.ensure_future(self._read())
        await asyncio.wait_for(self._ready.wait(), 120)

    async def _read(self) -> None:
        async for line in self.proc.stdout:
            word, *numbers = line.decode().split()
            if word == "ready":
                self._ready.set()
            elif word == "pid":
                await self._spawned.put(int(numbers[0]))
            elif word == "exit":
                self._exit(int(numbers[0])).set_result(int(numbers[1]))

    def _exit(self, pid: int) -> asyncio.Future:
        if pid not in self._exits:
            self._exits[pid] = asyncio.get_running_loop().create_future()
        return self._exits[pid]

    async def start(self, url: str, log: Path) -> Forked:
        self.proc.stdin.write(f"{url} {log}\n".encode())
        await self.proc.stdin.drain()
        pid = await asyncio.wait_for(self._spawned.get(), 30)
        return Forked(pid, self._exit(pid))

    async def close(self) -> None:
        if self.proc is None:
            return
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


class ColdStarter:
    """Each bot process started from scratch: ``python -m bot run``."""

    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = workdir

    async def open(self) -> None:
        pass

    async def start(self, url: str, log_path: Path) -> asyncio.subprocess.Process:
        log = open(log_path, "wb")  # noqa: SIM115
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env=dict(self.env, TELEGRAM_API_BASE_URL=url),
            )
        finally:
            log.close()

    async def close(self) -> None:
        pass


@dataclass
class BotProcess:
    number: int
    port: int
    proc: Any = None  # Forked or asyncio's Process
    state: str = "new"  # new, active, dead (or stopping, at the end)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: set[int] = field(default_factory=set)  # update ids it received
    accepted_nudges: list[tuple[int, list[int]]] = field(default_factory=list)
    accepted_photos: list[int] = field(default_factory=list)  # manager chats
    send_accepts: int = 0  # nudge and digest messages accepted
    inflight: Counter = field(default_factory=Counter)  # requests being handled, by kind
    started: float = 0.0
    log: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class Plan:
    """One kill: what triggers it and what is made due for it."""

    kind: str  # update, reply-before, reply-after, nudge, digest, tick, startup
    n: int = 1
    delay: float = 0.0
    nudge_reps: int = 0
    manager: bool = False
    downtime: float = 0.0
    count: int = 0
    armed: bool = False  # the trigger happened; the kill follows after ``delay``
    fired: str | None = None  # how it fired (or "fallback")

    def describe(self) -> str:
        extra = f" +{self.delay * 1000:.0f}ms" if self.delay else ""
        return f"{self.kind}#{self.n}{extra}"


PLAN_MIX = {
    "update": 18,
    "reply-before": 7,
    "reply-after": 7,
    "nudge": 7,
    "digest": 4,
    "tick": 7,
    "startup": 5,
}


def make_plans(rng, count: int) -> list[Plan]:
    kinds = [kind for kind, n in PLAN_MIX.items() for _ in range(n)]
    while len(kinds) < count:
        kinds.append(rng.choice(list(PLAN_MIX)))
    kinds = kinds[:count]
    rng.shuffle(kinds)
    plans = []
    for kind in kinds:
        plan = Plan(kind)
        if kind == "update":
            plan.n = rng.randint(1, 4)
            plan.delay = 0.0 if rng.random() < 0.15 else round(rng.uniform(0.0005, 0.06), 4)
        elif kind.startswith("reply"):
            plan.n = rng.randint(1, 4)
        elif kind == "nudge":
            plan.nudge_reps = rng.randint(1, 3)
            plan.n = rng.randint(1, plan.nudge_reps)
        elif kind == "digest":
            plan.manager = True
        elif kind == "tick":
            plan.nudge_reps = rng.randint(1, 3)
            plan.manager = rng.random() < 0.4
            plan.delay = round(rng.uniform(0.0, 1.5), 3)
        elif kind == "startup":
            plan.n = rng.randint(1, 9)  # getMe x2, setMyCommands x6, deleteWebhook
        if rng.random() < 0.25:
            plan.downtime = round(rng.uniform(0.2, 1.0), 2)
        plans.append(plan)
    return plans


@dataclass
class KillRecord:
    number: int
    plan: str
    fired: str
    labels: list[str]
    at: float


@dataclass
class Stats:
    kills: list[KillRecord] = field(default_factory=list)
    window_deferrals: int = 0  # kills put off: a nudge/digest was between send and record
    window_hits: list[str] = field(default_factory=list)
    late_sends: list[str] = field(default_factory=list)  # refused: arrived after their kill
    aged_nudges: int = 0
    aged_digests: int = 0
    lost_updates: int = 0
    redelivered_updates: int = 0
    resends: int = 0
    pokes: int = 0
    duplicate_prompts: int = 0  # a reply sent again after a kill (at least once), seen twice
    continuations: int = 0
    acknowledged: int = 0
    steps: int = 0
    startup_seconds: list[float] = field(default_factory=list)  # start to first getUpdates


class Supervisor:
    """Starts bot processes, kills them as the plans say, and keeps the books."""

    def __init__(
        self,
        fake: CrashFake,
        engine: Engine,
        *,
        workdir: Path,
        env: dict[str, str],
        plans: list[Plan],
        rng,
        team_id: int,
        zone: str,
        pg_application: str | None,
    ):
        self.fake = fake
        self.engine = engine
        self.workdir = workdir
        self.env = env
        self.plans = plans
        self.rng = rng
        self.team_id = team_id
        self.zone = zone
        self.pg_application = pg_application
        self.cold = os.environ.get("STAGECOACH_CRASH_COLD") == "1"
        self.launcher = (ColdStarter if self.cold else ForkServer)(env, workdir)
        self.stats = Stats()
        self.problems: list[str] = []
        self.processes: list[BotProcess] = []
        self.active: BotProcess | None = None
        self.plan: Plan | None = None
        self.plan_done = asyncio.Event()
        self.generation = 0  # grows with every kill
        self.more_deals = True
        self.reps: list[Rep] = []
        self.rep_chats: set[int] = set()
        self.manager_chats: dict[int, int] = {}  # chat -> member id
        self.free_deals: list[tuple[int, int]] = []  # (member id, deal id) for nudges
        self.injected_nudges: list[int] = []
        self.committed_by_dead: set[int] = set()
        self.lost: set[int] = set()
        self.killing = False
        self._tasks: set[asyncio.Task] = set()
        self.sent_nudges: set[int] = set()  # known 'sent' (final)
        self.t0 = time.monotonic()
        self.extra_before = None  # reproductions hook in here
        self.extra_after = None
        self.nudges_made = 0
        fake.observer = self

    # -- processes -------------------------------------------------------------------------------

    async def activate(self) -> BotProcess:
        """Start the next bot process (its requests go to a port of its own)."""
        port = await self.fake.add_site()
        process = BotProcess(len(self.processes) + 1, port)
        process.log = self.workdir / f"bot-{process.number:03d}.log"
        self.fake.process_of_port[port] = process
        self.processes.append(process)
        process.started = time.monotonic()
        process.proc = await self.launcher.start(self.fake.url(port), process.log)
        process.state = "active"
        self.active = process
        self._watch(process)
        self._wake_reps()
        return process

    async def kill(
        self, process: BotProcess, fired: str, own_kind: str | None = None, *, guard: bool = True
    ) -> bool:
        """SIGKILL ``process``; with ``guard``, not while a nudge or digest is between Telegram
        accepting it and the database recording it (the at-least-once window, reproduced by its
        own test) but as soon as that is over.

        Returns:
            Whether this call killed it.
        """
        if process.state != "active" or self.killing:
            return False
        self.killing = True
        deadline = time.monotonic() + (10 if guard else 0)
        deferred = False
        while time.monotonic() < deadline:
            accepts = process.send_accepts
            open_window = await asyncio.to_thread(self._window_open, process)
            for _ in range(3):
                await asyncio.sleep(0)
            sending = sum(process.inflight[k] for k in SENDS)
            if own_kind in SENDS:
                sending -= 1
            if process.state != "active":
                break
            if not open_window and not sending and accepts == process.send_accepts:
                break
            if not deferred:
                deferred = True
                self.stats.window_deferrals += 1
            await asyncio.sleep(0.01)
        killed = process.state == "active"
        if killed:
            os.kill(process.pid, signal.SIGKILL)
            process.state = "dead"
            self.generation += 1
            if self.plan is not None and self.plan.fired is None:
                self.plan.fired = fired
        self.killing = False
        await process.proc.wait()
        self.plan_done.set()
        return killed

    def _watch(self, process: BotProcess) -> None:
        """A bot process that ends without being killed is a failure (with its log's tail)."""

        async def watch() -> None:
            code = await process.proc.wait()
            if process.state == "active":
                process.state = "dead"
                tail = process.log.read_text(errors="replace").splitlines()[-15:]
                self.problems.append(
                    f"bot process {process.number} exited by itself (code {code}):\n"
                    + "\n".join(tail)
                )
                self.plan_done.set()

        task = asyncio.ensure_future(watch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _window_open(self, process: BotProcess) -> bool:
        """Whether a nudge or digest message of ``process`` was accepted but not recorded."""
        ids = [
            i for _, batch in process.accepted_nudges for i in batch if i not in self.sent_nudges
        ]
        with Session(self.engine) as session:
            if ids:
                rows = session.exec(select(Nudge.id, Nudge.state).where(col(Nudge.id).in_(ids)))
                states = dict(rows.all())
                self.sent_nudges.update(i for i, s in states.items() if s == "sent")
                if any(states.get(i) != "sent" for i in ids):
                    return True
            return bool(self._unrecorded_photos(session, process))
        return False

    def _unrecorded_photos(self, session: Session, process: BotProcess) -> list[int]:
        """Manager chats ``process`` sent a digest photo to whose digest is not recorded."""
        unrecorded = []
        for chat in set(process.accepted_photos):
            sent = session.exec(
                select(DigestRun.id).where(
                    DigestRun.member_id == self.manager_chats[chat], DigestRun.state == "sent"
                )
            ).first()
            if sent is None:
                unrecorded.append(chat)
        return unrecorded

    # -- request hooks --------------------------------------------------------------------------

    def kind_of(self, method: str, params: dict[str, Any]) -> str:
        chat = params.get("chat_id")
        if method == "getUpdates":
            return "poll"
        if method in STARTUP_METHODS:
            return "startup"
        if method == "sendPhoto":
            return "photo"
        if method == "sendMessage" and str(params.get("text", "")).startswith(NUDGE_TITLE):
            return "nudge"
        if method in REPLY_METHODS and isinstance(chat, int) and chat in self.manager_chats:
            return "digest-text"
        if method in REPLY_METHODS:
            return "reply"
        return "other"

    async def before(self, method: str, kind: str, params: dict, process: BotProcess) -> None:
        if kind in SENDS and process.state == "dead":
            # Written just before the kill, arrived after it: no guard sees such a request
            # coming, and accepting it would be a kill inside the at-least-once window. Refused,
            # it is what a kill a moment earlier gives (the window has its own reproduction).
            self.stats.late_sends.append(f"{kind} to {params.get('chat_id')}")
            raise ApiError(502, "Bad Gateway: the bot was killed")
        if kind == "poll" and not process.ready.is_set():
            process.ready.set()
            self.stats.startup_seconds.append(time.monotonic() - process.started)
        if self.extra_before is not None:
            await self.extra_before(method, kind, params, process)
        plan = self.plan
        if process is not self.active or plan is None or plan.fired or plan.armed:
            return
        wanted = {
            "startup": "startup",
            "reply-before": "reply",
            "nudge": "nudge",
            "digest": "photo",
        }.get(plan.kind)
        if wanted != kind:
            return
        plan.count += 1
        if plan.count >= plan.n:
            plan.armed = True
            if await self.kill(process, f"{plan.kind}: {method} received, not accepted", kind):
                raise ApiError(502, "Bad Gateway: the bot was killed")

    async def after(
        self, method: str, kind: str, params: dict, result: Any, process: BotProcess
    ) -> None:
        if kind == "nudge":
            process.accepted_nudges.append((params["chat_id"], nudge_ids(result)))
            process.send_accepts += 1
        elif kind == "photo":
            process.accepted_photos.append(params["chat_id"])
            process.send_accepts += 1
        if self.extra_after is not None:
            await self.extra_after(method, kind, params, result, process)
        plan = self.plan
        live = process is self.active and process.state == "active"
        armable = live and plan is not None and not plan.fired and not plan.armed
        if kind == "poll":
            if not live:
                return
            if armable and result and plan.kind == "update":
                plan.count += len(result)
                if plan.count >= plan.n and plan.delay == 0:
                    plan.armed = True
                    # Killed before the answer leaves: the bot never gets these updates.
                    if await self.kill(process, "update: killed while getUpdates answered"):
                        return
                elif plan.count >= plan.n:
                    plan.armed = True
                    self._later(plan.delay, process, f"update: {plan.delay * 1000:.1f} ms after")
            process.delivered.update(u["update_id"] for u in result)
            return
        if armable and plan.kind == "reply-after" and kind == "reply":
            plan.count += 1
            if plan.count >= plan.n:
                plan.armed = True
                await self.kill(process, f"reply-after: {method} accepted, answer not returned")

    def _later(self, delay: float, process: BotProcess, fired: str) -> asyncio.TimerHandle:
        """Kill ``process`` in ``delay`` seconds (if it still runs then)."""

        def fire() -> None:
            task = asyncio.ensure_future(self.kill(process, fired))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return asyncio.get_running_loop().call_later(delay, fire)

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.launcher.open()
            for number, plan in enumerate(self.plans, 1):
                await self._one_plan(number, plan)
                if self.problems:
                    return
            self.more_deals = False
            self.plan = None
            await self.activate()
        except Exception as exc:  # pragma: no cover - surfaced by the test
            self.problems.append(f"supervisor failed: {exc!r}")
            raise

    async def _one_plan(self, number: int, plan: Plan) -> None:
        self.plan_done.clear()
        if plan.nudge_reps:
            await asyncio.to_thread(self.inject_nudges, plan.nudge_reps)
        if plan.manager:
            await asyncio.to_thread(self.add_manager)
        self.plan = plan
        process = await self.activate()
        fallback = self._later(12, process, "fallback (the plan did not fire)")
        if plan.kind == "tick":
            plan.armed = True
            self._later(plan.delay, process, f"tick: {plan.delay:.2f} s after nudges fell due")
        await self.plan_done.wait()
        fallback.cancel()
        await process.proc.wait()
        labels = await self.after_kill(process)
        self.stats.kills.append(
            KillRecord(
                number, plan.describe(), plan.fired or "?", labels, time.monotonic() - self.t0
            )
        )
        await self.fake.drop_site(process.port)
        if plan.downtime:
            await asyncio.sleep(plan.downtime)

    async def after_kill(self, process: BotProcess) -> list[str]:
        """Once the process is dead: what it left behind, and the claims it held aged."""
        await self._wait_database_released()
        await asyncio.sleep(0.05)  # requests it wrote before dying reach the fake
        snapshot = await asyncio.to_thread(self._snapshot, process)
        labels = []
        if not process.ready.is_set():
            labels.append("startup")
        pending = self.fake.pending_update_ids()
        uncommitted = process.delivered - snapshot["committed"]
        self.committed_by_dead |= process.delivered & snapshot["committed"]
        for update_id in uncommitted:
            if update_id in pending:
                labels.append("update fetched, not committed: redelivered")
                self.stats.redelivered_updates += 1
            else:
                labels.append("update fetched, not committed: lost (offset already confirmed)")
                self.lost.add(update_id)
                self.stats.lost_updates += 1
        for rep in self.reps:
            state = snapshot["states"][rep.member_id]
            if rep.killed(self.generation, state, process, snapshot["committed"]):
                labels.append("update committed, reply not (fully) delivered")
        if snapshot["claimed_nudges"]:
            labels.append("nudge batch claimed, not sent")
        if snapshot["claimed_digests"]:
            labels.append("digest claimed, not sent")
        if snapshot["window"]:
            labels.append("AT-LEAST-ONCE WINDOW")
            self.stats.window_hits += snapshot["window"]
        self.stats.aged_nudges += snapshot["claimed_nudges"]
        self.stats.aged_digests += snapshot["claimed_digests"]
        return list(dict.fromkeys(labels)) or ["nothing in flight"]

    async def _wait_database_released(self) -> None:
        """On PostgreSQL, wait until the dead client's server processes are gone (a COMMIT it
        had sent completes or rolls back first)."""
        if self.pg_application is None:
            return
        for _ in range(500):
            with Session(self.engine) as session:
                left = session.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                    {"a": self.pg_application},
                ).scalar_one()
            if left == 0:
                return
            await asyncio.sleep(0.01)
        self.problems.append("the killed bot's PostgreSQL sessions did not go away")

    def _snapshot(self, process: BotProcess) -> dict[str, Any]:
        old = datetime.now(UTC) - CLAIM_TIMEOUT - timedelta(seconds=1)
        with transaction(self.engine) as session:
            delivered = list(process.delivered)
            committed = set(
                session.exec(
                    select(ProcessedUpdate.update_id).where(
                        col(ProcessedUpdate.update_id).in_(delivered or [-1])
                    )
                ).all()
            )
            states = {rep.member_id: read_state(session, rep.member_id) for rep in self.reps}
            window = []
            for chat, ids in process.accepted_nudges:
                rows = session.exec(select(Nudge).where(col(Nudge.id).in_(ids))).all()
                window += [f"nudge {n.id} to {chat}" for n in rows if n.state != "sent"]
            window += [f"digest to {chat}" for chat in self._unrecorded_photos(session, process)]
            # Time travel for the claims of the dead: CLAIM_TIMEOUT passes for them alone.
            aged_nudges = session.execute(
                update(Nudge)
                .where(col(Nudge.state) == "claimed")
                .values(claimed_at=old)
                .execution_options(synchronize_session=False)
            ).rowcount
            aged_digests = session.execute(
                update(DigestRun)
                .where(col(DigestRun.state) == "claimed")
                .values(claimed_at=old)
                .execution_options(synchronize_session=False)
            ).rowcount
        return {
            "committed": committed,
            "states": states,
            "claimed_nudges": aged_nudges,
            "claimed_digests": aged_digests,
            "window": window,
        }

    def _wake_reps(self) -> None:
        for event in self.fake.listeners.values():
            event.set()

    # -- making things due -------------------------------------------------------------------------

    def inject_nudges(self, reps: int) -> None:
        """Due nudges (in the past) for a few reps, one or two each, on seeded deals."""
        now = datetime.now(UTC)
        owners = sorted({owner for owner, _ in self.free_deals})
        chosen = self.rng.sample(owners, min(reps, len(owners)))
        with transaction(self.engine) as session:
            for owner in chosen:
                mine = [pair for pair in self.free_deals if pair[0] == owner]
                for pair in mine[: self.rng.randint(1, 2)]:
                    self.free_deals.remove(pair)
                    self.nudges_made += 1  # keeps due times distinct
                    due = now - timedelta(minutes=self.rng.randint(1, 90), seconds=self.nudges_made)
                    nudge = schedule_nudge(
                        session,
                        member_id=owner,
                        deal_id=pair[1],
                        kind=self.rng.choice(("gap", "resume")),
                        due_at=due,
                        now=due,
                    )
                    self.injected_nudges.append(nudge.id)

    def add_manager(self) -> None:
        chat = 3000 + len(self.manager_chats)
        with transaction(self.engine) as session:
            member = add_member(
                session,
                team_id=self.team_id,
                telegram_user_id=chat,
                display_name=f"Manager {chat}",
                role="manager",
                language="en",
                timezone=self.zone,
                now=datetime.now(UTC),
            )
            self.manager_chats[chat] = member.id

    async def finish(self, timeout: float) -> None:
        """After the last plan: wait for every rep, nudge and digest, then stop the bot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = all(rep.done for rep in self.reps)
            if done and await asyncio.to_thread(self._all_sent):
                break
            await asyncio.sleep(0.2)
        else:
            self.problems.append("not everything was sent before the final timeout")
        await self.fake.wait_until_idle(quiet=0.5, timeout=20)
        await self.shutdown()

    def _all_sent(self) -> bool:
        with Session(self.engine) as session:
            waiting = session.exec(
                select(Nudge.id).where(col(Nudge.state).in_(("pending", "claimed")))
            ).all()
            due = datetime.now(UTC)
            rows = session.exec(select(Nudge).where(col(Nudge.id).in_(waiting or [-1]))).all()
            if any(n.due_at <= due for n in rows):
                return False
            runs = session.exec(select(DigestRun).where(DigestRun.state == "sent")).all()
            return {r.member_id for r in runs} >= set(self.manager_chats.values())

    async def shutdown(self) -> None:
        for process in self.processes:
            if process.proc is None or process.proc.returncode is not None:
                continue
            if process.state == "active":
                process.state = "stopping"
                process.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.proc.wait(), 20)
                    continue
                except TimeoutError:
                    self.problems.append(f"bot process {process.number} did not stop on SIGTERM")
            process.proc.kill()
            await process.proc.wait()
            process.state = "dead"
        for port in list(self.fake.sites):
            await self.fake.drop_site(port)
        await self.launcher.close()


# -- reps ---------------------------------------------------------------------------------------


@dataclass
class Sent:
    update_id: int
    action: Action
    state: State  # when it was sent
    mark: int  # the chat's last message id before it
    generation: int
    poke: bool = False


class Rep:
    """One rep walking deals through the bot, one step at a time, through every crash."""

    STUCK_SECONDS = 40

    def __init__(self, supervisor: Supervisor, index: int, user_id: int, member_id: int, golden):
        self.sup = supervisor
        self.fake = supervisor.fake
        self.index = index
        self.user_id = user_id
        self.member_id = member_id
        self.golden: Golden = golden
        self.deal_number = 0
        self.deal_ids: list[int] = []
        self.sent: Sent | None = None
        self.last_step: tuple | None = None
        self.previous_mark = 0  # the chat's last message id before the action before ``sent``
        self.copies_seen: set[int] = set()  # copies of earlier messages (see ``_copy``)
        self.kill_states: list[tuple[int, State]] = []
        self.acknowledged: list[tuple[int, str]] = []  # (deal id, field) the bot moved on from
        self.steps_seen: list[tuple] = []
        self.done = False
        self.event = asyncio.Event()
        self.fake.listeners[user_id] = self.event
        supervisor.rep_chats.add(user_id)

    @property
    def customer(self) -> str:
        return f"Customer {self.index}-{self.deal_number}"

    @property
    def deal_name(self) -> str:
        return f"Deal {self.index}-{self.deal_number}"

    def problem(self, message: str) -> None:
        self.sup.problems.append(f"rep {self.index}: {message}")
        raise Killed(message)

    def read(self) -> State:
        with Session(self.sup.engine) as session:
            return read_state(session, self.member_id)

    # -- called by the supervisor right after a kill --------------------------------------------

    def killed(
        self, generation: int, state: State, process: BotProcess, committed: set[int]
    ) -> bool:
        """Note the state at a kill; returns whether ``process`` committed this rep's last
        update without its reply being shown."""
        self.kill_states.append((generation, state))
        self.event.set()
        sent = self.sent
        if sent is None or sent.update_id not in process.delivered & committed:
            return False
        return self.find_prompt(state, sent.mark) is None

    # -- what the fake shows -----------------------------------------------------------------------

    def find_prompt(self, state: State, after: int) -> dict[str, Any] | None:
        """The newest message after ``after`` that asks what ``state`` is waiting for."""
        for message in reversed(self.fake.bot_messages(self.user_id, after)):
            shown = message.get("text", "")
            if nudge_ids(message):
                continue
            if self._copy(message):
                continue
            if state.mode == QUESTION:
                if any(d.startswith(f"q:{state.seq}:") for _, d in message_buttons(message)):
                    return message
            elif state.mode == NEW_CUSTOMER:
                if shown in PROMPTS[NEW_CUSTOMER]:
                    return message
            elif state.mode == NEW_NAME:
                if shown.startswith(PROMPTS[NEW_NAME][0]) or shown == RESUME_NAME:
                    return message
            else:
                return message
        return None

    def _copy(self, message: dict[str, Any]) -> bool:
        """A later copy of a message the bot sent since the rep's previous action.

        With replies kept in the outbox, a kill after Telegram took a reply and before it was
        marked sent makes the restarted bot send it again (at least once, README); the rep
        does not take the copy for the answer to what it did since. After a poke the bot shows
        the open prompt again on purpose, and after saying it took a text for a re-send it asks
        again: those copies are the ones to act on.
        """
        if self.sent is None or self.sent.poke:
            return False
        recent = self.fake.bot_messages(self.user_id, self.previous_mark)
        if any(m.get("text", "").startswith(RESENT_NOTICE) for m in recent):
            return False
        looks = _looks(message)
        if not any(m["message_id"] < message["message_id"] and _looks(m) == looks for m in recent):
            return False
        if message["message_id"] not in self.copies_seen:
            self.copies_seen.add(message["message_id"])
            self.sup.stats.duplicate_prompts += 1
        return True

    # -- the walk -------------------------------------------------------------------------------

    async def run(self) -> None:
        with contextlib.suppress(Killed):
            await self._run()

    async def _run(self) -> None:
        state = await asyncio.to_thread(self.read)
        assert state.mode == IDLE
        self.last_step = state.step
        await self._act(state, self._next_action(state))
        waiting_since = time.monotonic()
        while not self.sup.problems:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), 0.25)
            self.event.clear()
            state = await asyncio.to_thread(self.read)
            sent = self.sent
            prompt = self.find_prompt(state, sent.mark)
            if prompt is None:
                if await self._recover(state):
                    waiting_since = time.monotonic()
                elif time.monotonic() - waiting_since > self.STUCK_SECONDS:
                    dump = "" if self.sup.problems else "\n" + self.fake.dump(8)
                    self.problem(
                        f"stuck at {state.show()} waiting for a reply to {sent.action} "
                        f"(update {sent.update_id}){dump}"
                    )
                continue
            self._observe(state, prompt)
            if state.mode == IDLE and not self.sup.more_deals:
                self.done = True
                return
            await self._act(state, self._next_action(state))
            waiting_since = time.monotonic()

    def _next_action(self, state: State) -> Action:
        if state.mode == IDLE:
            self.deal_number += 1
        return decide(state, self.customer, self.deal_name)

    async def _recover(self, state: State) -> bool:
        """No reply yet: after a kill, poke or resend as the lost update's fate says."""
        sent = self.sent
        active = self.sup.active
        if sent.generation == self.sup.generation or active is None:
            return False
        if active.state != "active" or not active.ready.is_set():
            return False
        if sent.update_id in self.sup.committed_by_dead:
            self.sup.stats.pokes += 1
            await self._send(state, Action("text", "/help"), poke=True)
            return True
        if sent.update_id in self.sup.lost:
            if state.step != sent.state.step or state.seq != sent.state.seq:
                self.problem(f"update {sent.update_id} counted lost, yet {state} moved on")
            self.sup.stats.resends += 1
            await self._send(state, sent.action, poke=sent.poke)
            return True
        return False

    def _observe(self, state: State, prompt: dict[str, Any]) -> None:
        """A prompt for ``state`` arrived: check it continues the walk where it should."""
        sent = self.sent
        step = state.step
        if state.mode == QUESTION and not prompt_text_ok(state, prompt, self.deal_name):
            self.problem(f"the prompt for {state.show()} shows {prompt.get('text')!r}")
        previous = self.last_step
        expected = self.golden.after(previous)
        allowed = {previous, expected}
        kills, self.kill_states = self.kill_states, []
        for _, killed_state in kills:
            # The database at a kill: where the last reply left the rep, or one step on (the
            # update in flight was committed).
            if killed_state.step not in allowed:
                self.problem(f"at a kill the database had {killed_state.show()} after {previous}")
        if kills:
            self.sup.stats.continuations += 1
        if step not in allowed:
            self.problem(f"after {previous} the bot went to {step}, expected {expected}")
        if step == expected and not sent.poke and sent.action.answers:
            self.acknowledged.append((sent.state.deal_id, sent.action.answers))
            self.sup.stats.acknowledged += 1
        if state.deal_id is not None and state.deal_id not in self.deal_ids:
            self.deal_ids.append(state.deal_id)
        if step != previous:
            self.steps_seen.append(step)
        self.last_step = step

    async def _act(self, state: State, action: Action) -> None:
        self.sup.stats.steps += 1
        await self._send(state, action)

    async def _send(self, state: State, action: Action, poke: bool = False) -> None:
        mark = self.fake.last_message_id(self.user_id)
        if action.kind == "text":
            update_id = self.fake.user_message(
                self.user_id, action.value, first_name=f"Rep{self.index}", language_code="en"
            )
        else:
            prompt = self.find_prompt(state, 0)
            if prompt is None:
                self.problem(f"no message with the buttons of {state.show()}")
            data = pick_button(message_buttons(prompt), action.value, state.seq)
            update_id = self.fake.callback(self.user_id, data, prompt["message_id"])
        self.previous_mark = self.sent.mark if self.sent is not None else 0
        self.sent = Sent(update_id, action, state, mark, self.sup.generation, poke)
