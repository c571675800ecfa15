"""Nudge tick: 1,000,000 nudge rows, 50 of them due, through ``NudgeRunner.due`` + ``delivered``.

The rows are what a year of use leaves: mostly sent, some dropped, a share pending for later
dates, spread over 10,000 deals; they are generated inside the database (INSERT ... SELECT
over a recursive CTE on SQLite, generate_series on PostgreSQL: seconds instead of minutes).
The 50 due ones are gap follow-ups for 50 different reps, each about a deal with open gaps, so
every one of them is sent. Each tick is on a later day at 10:00 in the reps' time zone (no
quiet hours, a fresh daily cap); before it the 50 rows are made due again.

The claim query is captured as the tick runs it and explained on the same database
(EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL).
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, event, text

from bench.databases import Database, scratch
from bench.report import Figure, at_most, info, note
from bench.seed import Shape, seed
from bench.sizes import Sizes
from bot.dialog.events import Outcome
from bot.dialog.writer import DialogConfig
from bot.jobs.nudge_runner import NudgeRunner
from flows.playbook import load_playbook

TICK_LIMIT_MS = 50.0
INDEX = "ix_nudge_pending_due"
# 10:00 in Asia/Shanghai on a Monday; later ticks are later days.
BASE = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
SHAPE = Shape(
    teams=20,
    reps_per_team=10,
    managers_per_team=1,
    deals=10_000,
    answers=60_000,
    reserved_per_rep=1,
)
QUICK_SHAPE = Shape(
    teams=2, reps_per_team=10, managers_per_team=1, deals=200, answers=1_000, reserved_per_rep=1
)

# Background rows: a pending one every 50th (a later date, one live per deal, kind and key, as
# the product allows; kinds "stale" and "date" so the due "gap" ones never clash), some dropped,
# the rest sent on the day they were due.
_PENDING = "(n.i % 50 = 0 AND n.i / 50 <= 2 * :deals)"
_KIND = (
    f"CASE WHEN {_PENDING} THEN (CASE (n.i / 50 / :deals) % 2 WHEN 0 THEN 'stale' ELSE 'date' END)"
    " ELSE (CASE n.i % 3 WHEN 0 THEN 'gap' WHEN 1 THEN 'stale' ELSE 'date' END) END"
)
_DEAL = f"CASE WHEN {_PENDING} THEN 1 + (n.i / 50) % :deals ELSE 1 + n.i % :deals END"
# Pending ones are due after the last tick's day (ticks are on consecutive days), so each
# tick has exactly the 50 due ones.
_LATER = "60 + n.i % 360"
_STATE = f"CASE WHEN {_PENDING} THEN 'pending' WHEN n.i % 33 = 0 THEN 'dropped' ELSE 'sent' END"

_SQLITE_FILL = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO nudge (id, member_id, deal_id, kind, key, due_at, state, claimed_by, claimed_at,
                   sent_at, created_at)
SELECT n.i, deal.owner_id, deal.id, {_KIND},
       CASE {_KIND} WHEN 'date' THEN 'bid_date' ELSE '' END,
       strftime('%Y-%m-%d %H:%M:%S', :base,
                CASE WHEN {_PENDING} THEN '+' || ({_LATER}) ELSE '-' || (1 + n.i % 360) END
                  || ' days')
         || '.000000',
       {_STATE}, NULL, NULL,
       CASE {_STATE} WHEN 'sent'
            THEN strftime('%Y-%m-%d %H:%M:%S', :base, '-' || (1 + n.i % 360) || ' days')
                 || '.000000' END,
       strftime('%Y-%m-%d %H:%M:%S', :base, '-' || (400 - n.i % 30) || ' days') || '.000000'
FROM n JOIN deal ON deal.id = {_DEAL}
"""

_POSTGRES_FILL = f"""
INSERT INTO nudge (id, member_id, deal_id, kind, key, due_at, state, claimed_by, claimed_at,
                   sent_at, created_at)
SELECT n.i, deal.owner_id, deal.id, {_KIND},
       CASE {_KIND} WHEN 'date' THEN 'bid_date' ELSE '' END,
       CAST(:base AS timestamptz)
         + (CASE WHEN {_PENDING} THEN {_LATER} ELSE -(1 + n.i % 360) END) * interval '1 day',
       {_STATE}, NULL, NULL,
       CASE {_STATE} WHEN 'sent'
            THEN CAST(:base AS timestamptz) - (1 + n.i % 360) * interval '1 day' END,
       CAST(:base AS timestamptz) - (400 - n.i % 30) * interval '1 day'
FROM generate_series(1, :count) AS n(i) JOIN deal ON deal.id = {_DEAL}
"""


def _fill(engine: Engine, rows: int, deals: int, due: list[tuple[int, int]]) -> list[int]:
    """``rows`` nudges in all, the last ``len(due)`` of them the due ones (ids returned)."""
    background = rows - len(due)
    sqlite = engine.dialect.name == "sqlite"
    base = BASE.replace(tzinfo=None).isoformat(sep=" ") if sqlite else BASE.isoformat()
    with engine.begin() as connection:
        connection.execute(
            text(_SQLITE_FILL if sqlite else _POSTGRES_FILL),
            {"count": background, "deals": deals, "base": base},
        )
        ids = list(range(background + 1, background + len(due) + 1))
        for nudge_id, (member_id, deal_id) in zip(ids, due, strict=True):
            connection.execute(
                text(
                    "INSERT INTO nudge (id, member_id, deal_id, kind, key, due_at, state, "
                    "created_at) VALUES (:id, :member, :deal, 'gap', '', :due, 'pending', :due)"
                ),
                {"id": nudge_id, "member": member_id, "deal": deal_id, "due": _bind(engine, BASE)},
            )
        if not sqlite:
            connection.execute(text("SELECT setval('nudge_id_seq', :n)"), {"n": rows})
        # Every table, as autovacuum would have by then (the seed's answers too: unanalysed,
        # PostgreSQL scans all of them for a few deals' answers).
        connection.execute(text("ANALYZE"))
    return ids


def _bind(engine: Engine, moment: datetime):
    """A timestamp as the product stores it (naive UTC text on SQLite)."""
    if engine.dialect.name == "sqlite":
        return (
            moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    return moment


def _make_due(engine: Engine, ids: list[int], now: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE nudge SET state = 'pending', due_at = :due, sent_at = NULL, "
                f"claimed_by = NULL, claimed_at = NULL WHERE id IN ({', '.join(map(str, ids))})"
            ),
            {"due": _bind(engine, now - timedelta(minutes=1))},
        )


class _ClaimCapture:
    """The claim query's SQL and parameters, as the tick sends them."""

    def __init__(self, engine: Engine):
        self.statement: str | None = None
        self.parameters = None
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if (
            self.statement is None
            and "FROM nudge" in statement
            and "ORDER BY nudge.due_at" in statement
        ):
            self.statement, self.parameters = statement, parameters

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def plan(self) -> str:
        prefix = "EXPLAIN QUERY PLAN " if self.engine.dialect.name == "sqlite" else "EXPLAIN "
        with self.engine.connect() as connection:
            rows = connection.exec_driver_sql(prefix + self.statement, self.parameters).all()
            connection.rollback()
        if self.engine.dialect.name == "sqlite":
            return "\n".join(str(row[-1]) for row in rows)
        return "\n".join(str(row[0]) for row in rows)


def _ticks(runner: NudgeRunner, engine: Engine, ids: list[int], count: int) -> dict:
    due_ms, delivered_ms, totals, empty_ms, sent = [], [], [], [], []
    for day in range(count):
        now = BASE + timedelta(days=day)
        _make_due(engine, ids, now)
        started = time.perf_counter()
        batches = runner.due(now)
        claimed = time.perf_counter()
        for batch in batches:
            runner.delivered(batch, Outcome.SENT, now)
        finished = time.perf_counter()
        runner.due(now)  # nothing left: the common tick
        empty = time.perf_counter()
        due_ms.append((claimed - started) * 1000)
        delivered_ms.append((finished - claimed) * 1000)
        totals.append((finished - started) * 1000)
        empty_ms.append((empty - finished) * 1000)
        sent.append(sum(len(b.nudge_ids) for b in batches))
    return {
        "due_ms": statistics.median(due_ms),
        "delivered_ms": statistics.median(delivered_ms),
        "total_ms": statistics.median(totals),
        "total_max_ms": max(totals),
        "empty_ms": statistics.median(empty_ms),
        "sent": f"{min(sent)}" if min(sent) == max(sent) else f"{min(sent)}-{max(sent)}",
    }


def _due_pairs(engine: Engine, seeded, count: int) -> list[tuple[int, int]]:
    """(member id, deal id) of ``count`` reps' first reserved deals (open, gaps open)."""
    pairs = []
    with engine.connect() as connection:
        for rep in seeded.reps[:count]:
            deal_id = connection.execute(
                text("SELECT id FROM deal WHERE team_id = :t AND number = :n"),
                {"t": rep.team_id, "n": rep.reserved[0]},
            ).scalar_one()
            pairs.append((rep.member_id, deal_id))
    return pairs


def _one(database: Database, sizes: Sizes, shape: Shape) -> tuple[list[Figure], str]:
    engine = database.engine()
    try:
        seeded = seed(engine, shape, now=BASE)
        started = time.perf_counter()
        ids = _fill(engine, sizes.nudges, shape.deals, _due_pairs(engine, seeded, sizes.due_nudges))
        filled = time.perf_counter() - started
        runner = NudgeRunner(engine, load_playbook(None), DialogConfig(), "bench")
        runner.due(BASE - timedelta(days=1))  # warm the statement caches, nothing is due yet
        capture = _ClaimCapture(engine)
        ticks = _ticks(runner, engine, ids, sizes.ticks)
        capture.close()
        plan = capture.plan()
    finally:
        engine.dispose()
    used = sorted(set(re.findall(r"\b(ix_\w+|uq_\w+|pk_\w+)", plan)))
    figures = [
        at_most(
            "tick with due nudges (due + delivered)",
            ticks["total_ms"],
            TICK_LIMIT_MS,
            "ms",
            f"median of {sizes.ticks}; {ticks['sent']} sent per tick; "
            f"max {ticks['total_max_ms']:.0f} ms",
        ),
        info("  of which due() (claim + build)", ticks["due_ms"], "ms"),
        info("  of which delivered()", ticks["delivered_ms"], "ms"),
        at_most(
            "empty tick (nothing due)", ticks["empty_ms"], TICK_LIMIT_MS, "ms", "the common case"
        ),
        Figure(
            "claim query plan uses an index",
            None,
            "",
            "an index",
            bool(used),
            f"uses {', '.join(used)}" if used else "full table scan (plan below)",
        ),
        Figure(f"claim query uses {INDEX}", None, "", "this index", INDEX in used),
        info("rows", sizes.nudges, "nudges", f"generated in {filled:.1f} s"),
    ]
    return figures, plan


def run(sizes: Sizes, kinds: list[str]) -> list[tuple[str, list[Figure]]]:
    tables = []
    shape = SHAPE if sizes.nudges >= 100_000 else QUICK_SHAPE
    for kind in kinds:
        with scratch(kind, "nudges") as database:
            figures, plan = _one(database, sizes, shape)
        note(f"nudge claim query plan on {database.label}:")
        note("\n".join(f"    {line}" for line in plan.splitlines()))
        tables.append((f"nudge tick — {database.label}", figures))
    return tables
