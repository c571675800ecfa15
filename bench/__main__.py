"""``python -m bench [--quick] [--only NAME[,NAME]]``: StageCoach's benchmarks, figures printed.

Benchmarks: throughput (StageCoach vs a PTB echo bot through the fake Bot API), digest (every
manager's digest at once), nudges (a tick over 1,000,000 nudge rows), idle (a running bot's
memory and start-up time), notes (reading a visit note; a rep's messages and taps with one).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from dataclasses import replace

# PTB 22 warns unless durations are opted in as timedelta (the bot's own tests do the same).
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bench.databases import postgres_problem, postgres_version  # noqa: E402
from bench.report import Figure, machine_line, note, print_table  # noqa: E402
from bench.sizes import FULL, QUICK  # noqa: E402

NAMES = ("throughput", "digest", "nudges", "idle", "notes")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(NAMES)}")
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="databases: sqlite, postgresql or both"
    )
    parser.add_argument("--rate", type=float, default=None, help="open-loop updates/s (100)")
    arguments = parser.parse_args(argv)
    chosen = [n.strip() for n in arguments.only.split(",") if n.strip()] or list(NAMES)
    unknown = set(chosen) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    arguments.names = chosen
    return arguments


def _databases(requested: str) -> list[str]:
    kinds = [k.strip() for k in requested.split(",") if k.strip()]
    if "postgresql" in kinds:
        problem = postgres_problem()
        if problem:
            note(f"PostgreSQL parts skipped: {problem}")
            kinds.remove("postgresql")
    return kinds


def _run(name: str, sizes, kinds: list[str]) -> list[tuple[str, list[Figure]]]:
    if name == "throughput":
        from bench import throughput

        return asyncio.run(throughput.run(sizes, kinds))
    if name == "digest":
        from bench import digest

        return digest.run(sizes, kinds)
    if name == "nudges":
        from bench import nudges

        return nudges.run(sizes, kinds)
    if name == "notes":
        from bench import notes

        return notes.run(sizes)
    from bench import idle

    return idle.run(sizes)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    sizes = QUICK if arguments.quick else FULL
    if arguments.rate:
        sizes = replace(sizes, rate=arguments.rate)
    kinds = _databases(arguments.db)
    extra = {"load average": " ".join(f"{load:.2f}" for load in os.getloadavg())}
    if "postgresql" in kinds:
        extra["postgresql"] = postgres_version()
    note(f"machine: {machine_line(extra)}")
    note(f"sizes: {'quick (CI smoke)' if arguments.quick else 'full (the issue)'}")
    failed, verdicts = [], []
    for name in arguments.names:
        started = time.perf_counter()
        try:
            tables = _run(name, sizes, kinds)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for title, figures in tables:
            print_table(title, figures)
            verdicts += [(title, f) for f in figures if f.ok is not None]
        note(f"({name} took {time.perf_counter() - started:.0f} s)")
    _summary(verdicts, failed)
    return 1 if failed else 0


def _summary(verdicts: list[tuple[str, Figure]], failed: list[str]) -> None:
    note("\n== targets ==")
    for title, figure in verdicts:
        shown = f"{figure.name} = {figure.shown()} (target {figure.target})"
        note(f"{figure.verdict:>4}  {title}: {shown}")
    if failed:
        note(f"FAILED to run: {', '.join(failed)}")
    note(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    sys.exit(main())
