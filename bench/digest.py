"""Digest build: every manager's digest at once, through ``DigestRunner.due(now, any_time=True)``.

Data: the issue's 100,000 deals (10 answers each, with their history) split as a sales
organisation is: 200 teams, each a manager with 10 reps and 500 deals; then the worst case, the
same deals in one team of 100,000 read by a few managers. Each tick runs in a fresh process
(bench/digest_worker.py) so that its peak RSS is its own: the tick is run timed, then under
cProfile for the split; claimed digests are forgotten before each. It runs on the first of the
chosen databases (SQLite by default): at these sizes it is about Python, not the database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench.databases import Database, scratch
from bench.report import Figure, at_most, info, note
from bench.seed import seed
from bench.sizes import Sizes

SECONDS_LIMIT = 5.0
MEMORY_LIMIT_MB = 300.0
WORKER_TIMEOUT = 900
ROOT = Path(__file__).resolve().parent.parent


def _worker(database: Database, now: datetime) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.digest_worker", database.url, now.isoformat()],
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"digest worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one_team(database: Database, managers: int) -> None:
    """Every deal and member in team 1, all but ``managers`` managers made reps."""
    engine = database.engine()
    with engine.begin() as connection:
        connection.execute(text("UPDATE deal SET team_id = 1, number = id"))
        connection.execute(text("UPDATE member SET team_id = 1"))
        keep = connection.execute(
            text("SELECT id FROM member WHERE role = 'manager' ORDER BY id LIMIT :n"),
            {"n": managers},
        ).scalars()
        ids = ", ".join(str(i) for i in keep)
        connection.execute(
            text(f"UPDATE member SET role = 'rep' WHERE role = 'manager' AND id NOT IN ({ids})")
        )
        connection.execute(
            text(
                "UPDATE team SET next_deal_number = (SELECT max(number) + 1 FROM deal) WHERE id = 1"
            )
        )
    engine.dispose()


def _case(database: Database, now: datetime, label: str) -> list[Figure]:
    timed = profiled = _worker(database, now)
    count = timed["digests"]
    figures = [
        at_most(
            f"{label}: wall time",
            timed["seconds"],
            SECONDS_LIMIT,
            "s",
            f"{count} digests, {timed['charts']} charts ({timed['chart_kb']:.0f} KiB); "
            f"bot.dialog.chart imported before, in {timed['chart_import_s']:.2f} s",
        ),
        at_most(
            f"{label}: peak RSS",
            timed["peak_rss_mb"],
            MEMORY_LIMIT_MB,
            "MB",
            f"process high-water mark; {timed['rss_before_mb']:.0f} MB before the tick",
        ),
    ]
    total = profiled["profiled_s"]
    for part, seconds in sorted(profiled["split_s"].items(), key=lambda kv: -kv[1]):
        share = seconds / total * 100 if total else 0
        figures.append(
            info(
                f"{label}: {part}",
                seconds / total * timed["seconds"],
                "s",
                f"{share:.0f}% (cProfile)",
            )
        )
    note(f"digest {label}: top own time under cProfile ({total:.1f} s profiled):")
    for row in profiled["top"][:8]:
        note(f"    {row['own_s']:7.2f} s  {row['function']}")
    return figures


def run(sizes: Sizes, kinds: list[str]) -> list[tuple[str, list[Figure]]]:
    tables = []
    shape = sizes.digest_shape
    for kind in kinds[:1]:
        with scratch(kind, "digest") as database:
            now = datetime.now(UTC)
            engine = database.engine()
            seeded = seed(engine, shape, now=now)
            engine.dispose()
            note(
                f"digest on {database.label}: seeded {seeded.rows['deal']:,} deals, "
                f"{seeded.rows['answer']:,} answers, {seeded.rows['answer_change']:,} history "
                f"rows, {seeded.rows['stage_change']:,} stage changes in {seeded.seconds:.0f} s"
            )
            managers = shape.teams * shape.managers_per_team
            per_team = shape.deals // shape.teams
            split = f"{managers} managers, {shape.teams} teams of {per_team:,} deals"
            figures = _case(database, now, split)
            _one_team(database, sizes.worst_managers)
            worst = f"{sizes.worst_managers} managers, 1 team of {shape.deals:,} deals"
            figures += _case(database, now, worst)
            tables.append((f"digest — {database.label}", figures))
    return tables
