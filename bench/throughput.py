"""Throughput and latency: StageCoach against a bare PTB echo bot, through the fake Bot API.

In one run: the echo bot (the framework's floor), then StageCoach on SQLite and on PostgreSQL,
each on a database with the issue's deals and answers. For every bot: a warm-up (every user
sends /help once, not counted), a saturated run and an open-loop run at a fixed offered rate.
The reps of a saturated run and of an open-loop run update different deals, both at stage 2
with the stage's questions open.

Bot CPU per update is this process's CPU time (all threads) over the measured run, divided by
the updates; the fake and the driver run in their own process (see bench/fakeproc.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.bots import echo_bot, polling, serving, stagecoach_bot
from bench.databases import Database, scratch
from bench.fakeproc import FakeServer
from bench.report import Figure, at_least, at_most, info, note
from bench.seed import Rep, seed
from bench.sizes import Sizes

TIMEOUT = 300.0  # seconds a run may take before it is reported incomplete
SATURATED_SHARE = 0.60  # of the echo bot's throughput
P99_LIMIT_MS = 15.0  # open loop, SQLite


@dataclass
class BotRun:
    name: str
    saturated: dict[str, Any]
    open_loop: dict[str, Any]


async def _measure(
    fake: FakeServer, running, ids: list[int], specs: dict[str, dict], rate: float
) -> BotRun:
    """Warm up (every user sends /help once), then a saturated and an open-loop run.

    ``running`` is the bot's polling loop, a context manager (PTB's Updater or StageCoach's).
    """
    async with running:
        await fake.run(users="ping", ids=ids, mode="saturated", timeout=TIMEOUT)
        runs = {}
        for mode in ("saturated", "open"):
            cpu = time.process_time()
            result = await fake.run(**specs[mode], mode=mode, rate=rate, timeout=TIMEOUT)
            result["cpu_ms"] = (time.process_time() - cpu) * 1000 / max(result["updates"], 1)
            runs[mode] = result
            _check(mode, result)
    return BotRun("", runs["saturated"], runs["open"])


def _check(mode: str, result: dict[str, Any]) -> None:
    problems = []
    if not result["complete"]:
        problems.append("did not finish in time")
    if result["refused"]:
        problems.append(f"{result['refused']} requests refused by the fake")
    if result["spec_violations"]:
        problems.append(f"spec violations {result['violation_examples']}")
    if result["unexpected"]:
        problems.append(f"{result['unexpected']} unexpected answers")
    if problems:
        note(f"  ! {mode}: " + "; ".join(problems))


async def _echo(fake: FakeServer, sizes: Sizes) -> BotRun:
    await fake.start()
    ids = [9_000_000 + n for n in range(sizes.reps)]
    spec = {"users": "echo", "ids": ids, "count": sizes.echo_lines}
    application = echo_bot(fake.token, fake.base_url)
    specs = {"saturated": spec, "open": spec}
    run = await _measure(fake, polling(application), ids, specs, sizes.rate)
    run.name = "echo"
    await fake.call("stop")
    return run


async def _stagecoach(fake: FakeServer, database: Database, reps: list[Rep], sizes: Sizes):
    await fake.start()
    application, app, stop_checkpoints = stagecoach_bot(fake.token, fake.base_url, database)
    ids = [r.user_id for r in reps]
    # Each mode updates other deals, each at stage 2 with its questions open.
    specs = {
        mode: {"users": "reps", "ids": ids, "reps": [(r.user_id, [r.reserved[n]]) for r in reps]}
        for n, mode in enumerate(("saturated", "open"))
    }
    try:
        run = await _measure(fake, serving(application), ids, specs, sizes.rate)
    finally:
        stop_checkpoints()
        app.engine.dispose()
        await fake.call("stop")
    run.name = f"StageCoach {database.label}"
    return run


async def run(sizes: Sizes, kinds: list[str]) -> list[tuple[str, list[Figure]]]:
    """Every figure of this benchmark, one table per bot."""
    tables = []
    with FakeServer() as fake:
        note("throughput: echo bot")
        echo = await _echo(fake, sizes)
        tables.append(("throughput — PTB echo bot (the floor)", _figures(echo, None)))
        for kind in kinds:
            with scratch(kind, "tp") as database:
                engine = database.engine()
                seeded = seed(engine, sizes.throughput_shape, now=datetime.now(UTC))
                engine.dispose()
                note(
                    f"throughput: StageCoach on {database.label} "
                    f"(seeded {seeded.rows['deal']:,} deals, {seeded.rows['answer']:,} answers "
                    f"in {seeded.seconds:.1f} s)"
                )
                coach = await _stagecoach(fake, database, seeded.reps, sizes)
            tables.append((f"throughput — {coach.name}", _figures(coach, echo, kind)))
    return tables


def _figures(bot: BotRun, echo: BotRun | None, kind: str = "") -> list[Figure]:
    sat, loop = bot.saturated, bot.open_loop
    rate = f"{loop['updates'] / max(loop['seconds'], 1e-9):.0f}/s offered"
    figures = []
    detail = f"{sat['updates']:,} updates"
    if bot.name != "echo":
        detail += f" ({sat['typed']:,} typed, {sat['presses']:,} presses, {sat['runs']} runs)"
    if echo is None:
        figures.append(info("saturated throughput", sat["per_second"], "updates/s", detail))
    else:
        share = sat["per_second"] / echo.saturated["per_second"]
        figures.append(info("saturated throughput", sat["per_second"], "updates/s", detail))
        figures.append(
            at_least(
                "saturated / echo", share * 100, SATURATED_SHARE * 100, "%", "target >= 60% of echo"
            )
        )
    figures.append(info("bot CPU per update (saturated)", sat["cpu_ms"], "ms"))
    figures.append(_requests(sat))
    if echo is not None:
        # Less sensitive to a busy machine than the throughput share: both are CPU-bound.
        cpu_share = echo.saturated["cpu_ms"] / max(sat["cpu_ms"], 1e-9)
        figures.append(info("echo CPU / bot CPU per update", cpu_share * 100, "%", "saturated"))
    figures.append(info("saturated latency p50", sat["p50_ms"], "ms", "queueing included"))
    figures.append(info("open loop p50", loop["p50_ms"], "ms", rate))
    figures.append(info("open loop p95", loop["p95_ms"], "ms"))
    if kind == "sqlite":
        figures.append(at_most("open loop p99", loop["p99_ms"], P99_LIMIT_MS, "ms"))
    else:
        figures.append(info("open loop p99", loop["p99_ms"], "ms"))
    figures.append(info("open loop max", loop["max_ms"], "ms", f"{loop['updates']:,} updates"))
    if echo is not None:
        figures.append(
            info("open loop p99 / echo p99", loop["p99_ms"] / echo.open_loop["p99_ms"], "x")
        )
    figures.append(info("bot CPU per update (open loop)", loop["cpu_ms"], "ms"))
    if loop["stalls"] or loop["max_lag_ms"] > 5:
        figures.append(
            info(
                "open loop stalls",
                loop["stalls"],
                "ticks",
                f"scheduler lag {loop['max_lag_ms']:.1f} ms",
            )
        )
    return figures


def _requests(result: dict[str, Any]) -> Figure:
    """Bot API requests per update (each costs the bot an HTTP round trip), by method."""
    requests = result["requests"]
    by_method = ", ".join(
        f"{method} {count / max(result['updates'], 1):.2f}"
        for method, count in requests.most_common()
    )
    per_update = sum(requests.values()) / max(result["updates"], 1)
    return info("Bot API requests per update", per_update, "", by_method)
