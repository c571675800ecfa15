"""Idle footprint: ``stagecoach run`` as its own process against the fake Bot API.

The bot runs as it does in production (long polling, the nudge and digest ticks on), with
TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL pointing at the fake (in this process) and
DATABASE_URL at a SQLite file with the issue's 10,000 deals. Start-up time is from just before
the process is started to its first getUpdates request at the fake. The resident memory is
read from /proc/<pid>/status (VmRSS, and the high-water mark VmHWM) once the bot has settled:
no request but getUpdates for a few seconds (its first ticks plan stale-deal nudges and may
send them, and send the managers' digests, due at midnight here so that they go whatever the
hour: a bot that has run for a day has built charts; the chats are known to the fake).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.databases import scratch
from bench.fakeproc import ProbedFakeBotApi
from bench.report import Figure, at_most, info, note
from bench.seed import seed
from bench.sizes import Sizes

RSS_LIMIT_MB = 150.0
STARTUP_LIMIT_S = 2.0
START_TIMEOUT = 60.0
SETTLE_TIMEOUT = 120.0
SENDS = ("sendMessage", "sendPhoto", "editMessageText", "answerCallbackQuery")


def _command() -> list[str]:
    script = Path(sys.executable).parent / "stagecoach"
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found


async def _settle(fake: ProbedFakeBotApi, quiet: float) -> float:
    """Wait until only getUpdates has been called for ``quiet`` seconds; returns when."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    seen, since = 0, loop.time()
    while loop.time() < deadline:
        busy = sum(1 for method, _ in fake.requests if method != "getUpdates")
        if busy != seen or fake._in_flight:
            seen, since = busy, loop.time()
        elif loop.time() - since >= quiet:
            break
        await asyncio.sleep(0.05)
    return loop.time()


async def _measure(url: str, members: list[int], quiet: float) -> dict:
    fake = await ProbedFakeBotApi().start()
    for chat_id in members:
        fake.register_chat(chat_id, "private", "Member")
    folder = tempfile.mkdtemp(prefix="stagecoach-bench-idle-")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("STAGECOACH_CONFIG", "TELEGRAM_WEBHOOK_SECRET")
    }
    # Digests at midnight: the start-up sends the day's digests whatever the hour, so the
    # settled figure is a bot that has built its charts, as every bot has after its first day.
    config = Path(folder) / "config.toml"
    config.write_text('[digest]\ntime = "00:00"\n', encoding="utf-8")
    env.update(
        STAGECOACH_CONFIG=str(config),
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE_URL=fake.base_url,
        DATABASE_URL=url,
        PTB_TIMEDELTA="true",
    )
    log = open(Path(folder) / "bot.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    started = time.time()
    process = subprocess.Popen(_command(), cwd=folder, env=env, stdout=log, stderr=log)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while fake.first_get_updates is None:
            if process.poll() is not None or loop.time() > deadline:
                raise RuntimeError(f"the bot did not start polling: {_tail(folder)}")
            await asyncio.sleep(0.005)
        first_poll = fake.first_get_updates - started
        at_first_poll = _status(process.pid)
        await _settle(fake, quiet)
        settled = _status(process.pid)
        sends = {m: sum(1 for method, _ in fake.requests if method == m) for m in SENDS}
        refused = fake.refused
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        await fake.stop()
    tail = _tail(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "startup_s": first_poll,
        "rss_first_poll_mb": at_first_poll["VmRSS"],
        "rss_mb": settled["VmRSS"],
        "hwm_mb": settled["VmHWM"],
        "sends": sends,
        "refused": refused,
        "log_tail": tail,
    }


def _tail(folder: str) -> str:
    try:
        return (Path(folder) / "bot.log").read_text(encoding="utf-8")[-1500:]
    except OSError:
        return ""


def run(sizes: Sizes) -> list[tuple[str, list[Figure]]]:
    with scratch("sqlite", "idle") as database:
        engine = database.engine()
        seeded = seed(engine, sizes.idle_shape, now=datetime.now(UTC))
        engine.dispose()
        members = [r.user_id for r in seeded.reps] + seeded.manager_user_ids
        result = asyncio.run(_measure(database.url, members, sizes.settle_seconds))
    if result["refused"]:
        note(f"  ! the fake refused {result['refused']} requests; bot log:\n{result['log_tail']}")
    sent = ", ".join(f"{n} {m}" for m, n in result["sends"].items() if n) or "nothing"
    figures = [
        at_most(
            "start-up to first getUpdates",
            result["startup_s"],
            STARTUP_LIMIT_S,
            "s",
            "process start to its first poll",
        ),
        at_most(
            "resident memory, settled (VmRSS)",
            result["rss_mb"],
            RSS_LIMIT_MB,
            "MB",
            f"{seeded.rows['deal']:,} deals; start-up ticks sent {sent}",
        ),
        info("resident memory at first getUpdates", result["rss_first_poll_mb"], "MB"),
        info("high-water mark (VmHWM)", result["hwm_mb"], "MB"),
    ]
    return [("idle footprint — stagecoach run on SQLite", figures)]
