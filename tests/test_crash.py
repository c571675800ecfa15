"""Crash recovery: the bot as a separate process, SIGKILLed at 50+ seeded random points.

Reps walk deals through stage 1 and 2 (typed answers and buttons) while nudges and digests fall
due; the bot is killed between receiving an update and replying, while a reply is being
accepted, at start-up and while a nudge batch or a digest is being claimed, built or sent, and
restarted each time (see tests/crash_driver.py). Afterwards every acknowledged answer is stored
exactly once, no conversation is stuck or skipped a question, and every due nudge and digest
went out exactly once. A summary of what the kills interrupted is printed (``-s``) and written to
``summary.txt`` in the test's tmp_path.

A reproduction (strict xfail) documents what the product does not guarantee: a kill after
Telegram accepted a nudge and before it is recorded sends it again (nudges are at least once;
Telegram has no idempotent send). Another shows that an update fetched before a kill is handled
after the restart (bot/tg/polling.py confirms updates only once they were handled).

Environment: STAGECOACH_CRASH_SEED (plans), STAGECOACH_CRASH_KILLS (default 55),
STAGECOACH_CRASH_COLD=1 (start each bot with ``python -m bot run`` instead of the fork server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from bot.dialog.state import IDLE
from flows.i18n import t
from storage.answers import get_answers, list_answer_changes
from storage.db import make_engine, transaction, upgrade
from storage.deals import create_deal
from storage.models import Deal, DigestRun, Nudge
from storage.teams import add_member, create_team
from tests.crash_driver import (
    CrashFake,
    Golden,
    Rep,
    Supervisor,
    change_key,
    golden_walk,
    make_plans,
    nudge_ids,
    read_state,
)

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

SEED = int(os.environ.get("STAGECOACH_CRASH_SEED", "20261126"))
KILLS = int(os.environ.get("STAGECOACH_CRASH_KILLS", "55"))
REPS = 5  # walking deals; one more rep only gets nudges
DAILY_CAP = 20  # the most config allows; above DEALS_FOR_NUDGES, so no nudge waits a day
DEALS_FOR_NUDGES = 15  # per rep, each nudged at most once
DIGEST_MARK = "📊 Daily digest"


def midday_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about noon: no digest day ends during the test."""
    offset = (12 - now.hour + 12) % 24 - 12  # -12..+11
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def config_file(folder: Path, zone: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        "[nudges]\n"
        "tick_seconds = 1\n"
        'quiet_start = "00:00"\n'
        'quiet_end = "00:00"\n'
        f"daily_cap = {DAILY_CAP}\n"
        "[digest]\n"
        'time = "00:00"\n'
        "[defaults]\n"
        'language = "en"\n'
        f'timezone = "{zone}"\n',
        encoding="utf-8",
    )
    return path


def seed_team(engine: Engine, zone: str) -> tuple[int, list[tuple[int, int]], list]:
    """The team, its reps (telegram id, member id) and deals for nudges (owner, deal)."""
    now = datetime.now(UTC)
    with transaction(engine) as session:
        team = create_team(session, name="Sales East", now=now)
        reps = []
        for n in range(REPS + 1):
            member = add_member(
                session,
                team_id=team.id,
                telegram_user_id=1001 + n,
                display_name=f"Rep {n + 1}",
                role="rep",
                language="en",
                timezone=zone,
                now=now,
            )
            reps.append((member.telegram_user_id, member.id))
        deals = []
        for n in range(DEALS_FOR_NUDGES):
            for _, member_id in reps:
                deal = create_deal(
                    session,
                    team_id=team.id,
                    owner_id=member_id,
                    name=f"Seeded {member_id}-{n}",
                    customer="Seeded customer",
                    stage_id="potential",
                    currency="CNY",
                    now=now - timedelta(days=2),
                )
                deals.append((member_id, deal.id))
        return team.id, reps, deals


@pytest.fixture
def golden(tmp_path: Path) -> Golden:
    engine = make_engine(f"sqlite:///{tmp_path / 'golden.db'}")
    try:
        upgrade(engine)
        return golden_walk(engine)
    finally:
        engine.dispose()


@contextlib.asynccontextmanager
async def bot_world(db_url: str, engine: Engine, folder: Path, plans: list):
    """A seeded team, the fake Bot API and a supervisor ready to start bot processes."""
    rng = random.Random(SEED)
    zone = midday_zone(datetime.now(UTC))
    team_id, members, free_deals = seed_team(engine, zone)
    pg_application = None
    bot_url = db_url
    if engine.dialect.name == "postgresql":
        # Named, so that the sessions of a killed bot can be seen to end.
        pg_application = f"stagecoach_crash_{folder.name}"[:60]
        bot_url = make_url(db_url).update_query_dict({"application_name": pg_application})
        bot_url = bot_url.render_as_string(hide_password=False)
    async with CrashFake() as fake:
        env = dict(
            os.environ,
            TELEGRAM_BOT_TOKEN=fake.token,
            DATABASE_URL=bot_url,
            STAGECOACH_CONFIG=str(config_file(folder, zone)),
            PTB_TIMEDELTA="true",
            # The bot runs the code these tests belong to.
            PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        )
        supervisor = Supervisor(
            fake,
            engine,
            workdir=folder,
            env=env,
            plans=plans,
            rng=rng,
            team_id=team_id,
            zone=zone,
            pg_application=pg_application,
        )
        supervisor.free_deals = list(free_deals)
        try:
            yield fake, supervisor, members
        finally:
            await supervisor.shutdown()


async def test_every_answer_nudge_and_digest_survives_50_kills(db_url, engine, golden, tmp_path):
    started = time.monotonic()
    plans = make_plans(random.Random(SEED), KILLS)
    async with bot_world(db_url, engine, tmp_path, plans) as (fake, supervisor, members):
        supervisor.add_manager()
        supervisor.inject_nudges(2)
        reps = [
            Rep(supervisor, n + 1, user_id, member_id, golden)
            for n, (user_id, member_id) in enumerate(members[:REPS])
        ]
        supervisor.reps = reps
        walks = [asyncio.create_task(rep.run()) for rep in reps]
        try:
            await asyncio.wait_for(supervisor.run(), 420)
            if not supervisor.problems:
                await supervisor.finish(timeout=120)
            await asyncio.wait_for(asyncio.gather(*walks), 30)
        finally:
            for walk in walks:
                walk.cancel()
    summary = report(supervisor, time.monotonic() - started, engine.dialect.name)
    (tmp_path / "summary.txt").write_text(summary, encoding="utf-8")
    print(summary)
    assert supervisor.problems == [], "\n".join(supervisor.problems) + "\n" + summary
    assert len(supervisor.stats.kills) >= 50
    repeats: list[str] = []
    problems = (
        check_conversations(engine, reps, golden)
        + check_nudges(engine, fake, supervisor, repeats)
        + check_digests(engine, fake, supervisor)
    )
    assert problems == [], "\n".join(problems) + "\n" + summary
    # A nudge repeated after a kill in the at-least-once window is the documented limit (see the
    # xfail below), and the guard keeps kills out of that window: a repeat without a window hit
    # is a bug.
    if supervisor.stats.window_hits:
        print(f"at-least-once window hits {supervisor.stats.window_hits}, repeats {repeats}")
    else:
        assert repeats == [], f"nudges repeated without a kill in the window: {repeats}"
    assert fake.spec_violations == []


# -- reproductions of what the product does not (yet) guarantee ---------------------------------


class PropertyFailed(AssertionError):
    """The property a reproduction is about failed (and nothing else went wrong)."""


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.xfail(
    raises=PropertyFailed,
    strict=True,
    reason="at-least-once nudges: a kill after Telegram accepted a batch and before "
    "NudgeRunner.delivered() committed leaves the rows claimed; they are sent again after "
    "CLAIM_TIMEOUT",
)
async def test_a_kill_between_telegram_accepting_a_nudge_and_recording_it(db_url, engine, tmp_path):
    async with bot_world(db_url, engine, tmp_path, plans=[]) as (fake, supervisor, _):
        supervisor.inject_nudges(1)
        due = list(supervisor.injected_nudges)
        await supervisor.launcher.open()

        async def kill_once_accepted(method, kind, params, result, process) -> None:
            if kind == "nudge" and process.number == 1:
                await supervisor.kill(process, "nudge accepted, not recorded", guard=False)

        supervisor.extra_after = kill_once_accepted
        first = await supervisor.activate()
        await asyncio.wait_for(first.proc.wait(), 60)
        assert "AT-LEAST-ONCE WINDOW" in await supervisor.after_kill(first)
        await supervisor.activate()  # CLAIM_TIMEOUT has passed for the dead one's claims

        def all_sent() -> bool:
            with Session(engine) as session:
                rows = session.exec(select(Nudge).where(col(Nudge.id).in_(due))).all()
                return all(row.state == "sent" for row in rows)

        await wait_until(all_sent, 30, "the nudges to be sent")
    sent = Counter(i for message in fake.sent() for i in nudge_ids(message))
    if any(sent[i] != 1 for i in due):
        raise PropertyFailed(f"nudges {due} went out {[sent[i] for i in due]} times")


@contextlib.contextmanager
def writes_held(engine: Engine):
    """Hold the database's write lock (SQLite) or processed_update's (PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()
        try:
            connection.driver_connection.execute("BEGIN IMMEDIATE")
            yield
        finally:
            connection.driver_connection.rollback()
            connection.close()
        return
    with engine.connect() as connection:
        connection.execute(text("LOCK TABLE processed_update IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            connection.rollback()


async def test_an_update_fetched_before_a_kill_is_handled_after_the_restart(
    db_url, engine, tmp_path
):
    async with bot_world(db_url, engine, tmp_path, plans=[]) as (fake, supervisor, members):
        user_id, _ = members[0]
        await supervisor.launcher.open()
        first = await supervisor.activate()
        await asyncio.wait_for(first.ready.wait(), 60)
        confirmed = asyncio.Event()
        sent: list[int] = []

        async def watch_offsets(method, kind, params, process) -> None:
            if kind == "poll" and sent and int(params.get("offset") or 0) > sent[0]:
                confirmed.set()

        supervisor.extra_before = watch_offsets
        with writes_held(engine):  # the handler gets the update but cannot commit
            sent.append(fake.user_message(user_id, "/new", first_name="Rep1", language_code="en"))
            await wait_until(lambda: sent[0] in first.delivered, 10, "the bot to fetch it")
            # Today the next getUpdates confirms it at once; a fixed bot would not.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(confirmed.wait(), 2)
            await supervisor.kill(first, "update fetched, not committed", guard=False)
        await supervisor.after_kill(first)
        await supervisor.activate()
        asked = t("en", "dialog.ask_customer")
        try:
            await fake.wait_for(lambda: fake.last_text(user_id) == asked, timeout=8)
        except AssertionError:
            raise PropertyFailed(
                f"update {sent[0]} (/new) was fetched by the killed bot and never handled"
            ) from None


# -- the properties -----------------------------------------------------------------------------


def check_conversations(engine: Engine, reps: list[Rep], golden: Golden) -> list[str]:
    """Each rep finished, walked the golden steps in order, and every answer is stored once."""
    problems = []
    with Session(engine) as session:
        for rep in reps:
            who = f"rep {rep.index}"
            state = read_state(session, rep.member_id)
            if state.mode != IDLE:
                problems.append(f"{who} ended at {state.show()}, not idle")
            expected_steps = golden.steps * rep.deal_number
            if rep.steps_seen != expected_steps:
                problems.append(f"{who} was asked {rep.steps_seen}, expected {expected_steps}")
            deals = session.exec(
                select(Deal).where(Deal.owner_id == rep.member_id, col(Deal.name).like("Deal %"))
            ).all()
            names = Counter(deal.name for deal in deals)
            wanted = {f"Deal {rep.index}-{n}" for n in range(1, rep.deal_number + 1)}
            if set(names) != wanted or max(names.values(), default=1) != 1:
                problems.append(f"{who} has deals {dict(names)}, expected one each of {wanted}")
            for deal in deals:
                answers = get_answers(session, deal_id=deal.id)
                if answers != golden.answers:
                    problems.append(f"{who} {deal.name}: answers {answers} != {golden.answers}")
                changes = Counter(
                    change_key(c.key, c.old_value, c.new_value)
                    for c in list_answer_changes(session, deal_id=deal.id)
                )
                if changes != golden.changes:
                    extra = changes - golden.changes
                    missing = golden.changes - changes
                    problems.append(
                        f"{who} {deal.name}: answer history differs; "
                        f"extra {dict(extra)}, missing {dict(missing)}"
                    )
            for deal_id, key in rep.acknowledged:
                history = list_answer_changes(session, deal_id=deal_id, key=key)
                stored = get_answers(session, deal_id=deal_id).get(key)
                if len(history) != 1 or stored is None or history[0].new_value != stored:
                    problems.append(
                        f"{who}: acknowledged answer {key} of deal {deal_id} is stored "
                        f"{len(history)} times (value {stored!r})"
                    )
    return problems


def check_nudges(
    engine: Engine, fake: CrashFake, supervisor: Supervisor, repeats: list[str]
) -> list[str]:
    """Every due nudge went out; the ones that went out more than once, or twice for one
    (chat, due time), are added to ``repeats``."""
    problems = []
    messages: Counter = Counter()
    per_due: Counter = Counter()
    with Session(engine) as session:
        rows = {n.id: n for n in session.exec(select(Nudge))}
        for message in fake.sent():
            ids = nudge_ids(message)
            messages.update(ids)
            chat = message["chat"]["id"]
            per_due.update({(chat, rows[i].due_at) for i in ids})
    now = datetime.now(UTC)
    for nudge_id in supervisor.injected_nudges:
        nudge = rows[nudge_id]
        if messages[nudge_id] > 1:
            repeats.append(f"nudge {nudge_id} went out {messages[nudge_id]} times")
        if nudge.state != "sent" or messages[nudge_id] == 0:
            problems.append(
                f"nudge {nudge_id} ({nudge.kind}, due {nudge.due_at:%H:%M:%S}) is "
                f"{nudge.state} and went out {messages[nudge_id]} times"
            )
    for nudge_id, count in messages.items():
        if count > 1 and nudge_id not in supervisor.injected_nudges:
            repeats.append(f"nudge {nudge_id} went out {count} times")
    for nudge in rows.values():
        if nudge.state in ("pending", "claimed") and nudge.due_at <= now:
            problems.append(f"nudge {nudge.id} was due at {nudge.due_at} and is {nudge.state}")
    repeats.extend(f"{count} messages for {key}" for key, count in per_due.items() if count > 1)
    return problems


def check_digests(engine: Engine, fake: CrashFake, supervisor: Supervisor) -> list[str]:
    """Each manager got today's digest (chart and text) exactly once, and it is recorded."""
    problems = []
    with Session(engine) as session:
        for chat, member_id in supervisor.manager_chats.items():
            sent = fake.sent(chat)
            photos = sum("photo" in m for m in sent)
            texts = sum(m.get("text", "").startswith(DIGEST_MARK) for m in sent)
            runs = session.exec(select(DigestRun).where(DigestRun.member_id == member_id)).all()
            states = [run.state for run in runs]
            if photos != 1 or texts != 1 or states != ["sent"]:
                problems.append(
                    f"manager {chat}: {photos} digest charts, {texts} digest texts, runs {states}"
                )
    return problems


def report(supervisor: Supervisor, seconds: float, database: str) -> str:
    stats = supervisor.stats
    by_plan = Counter(record.plan.split("#")[0] for record in stats.kills)
    labels = Counter(label for record in stats.kills for label in record.labels)
    fallbacks = sum(record.fired.startswith("fallback") for record in stats.kills)
    starts = sorted(stats.startup_seconds)
    lines = [
        f"crash test on {database}: {len(stats.kills)} kills in {seconds:.0f} s "
        f"(seed {SEED}, {'cold' if supervisor.cold else 'fork-server'} starts)",
        f"  kill triggers: {dict(by_plan)}; fallbacks: {fallbacks}",
        "  kills that interrupted (a kill can interrupt several things):",
        *(f"    {count:3d}  {label}" for label, count in labels.most_common()),
        f"  rep steps {stats.steps}, acknowledged answers {stats.acknowledged}, "
        f"continuations checked after kills {stats.continuations}",
        f"  updates lost (confirmed by getUpdates before the handler committed) "
        f"{stats.lost_updates}, resent by the rep {stats.resends}; "
        f"redelivered {stats.redelivered_updates}; pokes after a lost reply {stats.pokes}; "
        f"prompts seen twice (sent again after a kill) {stats.duplicate_prompts}",
        f"  claims a killed process left, taken over after CLAIM_TIMEOUT (aged by the test; "
        f"cumulative): {stats.aged_nudges} nudge rows, {stats.aged_digests} digest runs",
        f"  kills that fell between Telegram accepting a nudge/digest and the database recording "
        f"it (at-least-once window), put off until it closed: {stats.window_deferrals}; "
        f"window hits: {len(stats.window_hits)}",
        f"  nudge and digest sends that reached the fake after their bot's kill, refused as if "
        f"the kill came first: {len(stats.late_sends)}",
        f"  nudges made due {len(supervisor.injected_nudges)}, "
        f"managers with a due digest {len(supervisor.manager_chats)}",
    ]
    if starts:
        lines.append(
            f"  start to first getUpdates: median {starts[len(starts) // 2]:.2f} s, "
            f"max {starts[-1]:.2f} s"
        )
    lines.append("  kills: " + json.dumps([(r.plan, r.labels) for r in stats.kills])[:4000])
    return "\n".join(lines)
