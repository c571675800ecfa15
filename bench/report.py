"""Figures, targets and the printed tables; the machine the figures were measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TextIO

PASS, MISS, INFO = "pass", "MISS", ""


@dataclass(frozen=True)
class Figure:
    """One measured number, with its target if the issue sets one."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target (context only)
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return INFO
        return PASS if self.ok else MISS

    def shown(self) -> str:
        if self.value is None:
            return "—"
        value = self.value
        if abs(value) >= 100 or value == int(value):
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:,.1f}"
        else:
            text = f"{value:,.2f}"
        return f"{text} {self.unit}".rstrip()


def at_most(name: str, value: float | None, limit: float, unit: str, note: str = "") -> Figure:
    ok = None if value is None else value < limit
    return Figure(name, value, unit, f"< {limit:g} {unit}", ok, note)


def at_least(name: str, value: float | None, limit: float, unit: str, note: str = "") -> Figure:
    ok = None if value is None else value >= limit
    return Figure(name, value, unit, f">= {limit:g} {unit}", ok, note)


def info(name: str, value: float | None, unit: str, note: str = "") -> Figure:
    return Figure(name, value, unit, "", None, note)


def machine() -> dict[str, str]:
    """nproc, CPU model, Python and library versions."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(cores),
        "cpu": model,
        "memory": _memory(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "python-telegram-bot": _version("python-telegram-bot"),
        "sqlalchemy": _version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "asyncpg": _version("asyncpg"),  # PostgreSQL chat turns
        "psycopg": _version("psycopg"),  # everything else on PostgreSQL
        "pillow": _version("pillow"),
        "os": f"{platform.system()} {platform.release()}",
    }


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_line(extra: dict[str, str] | None = None) -> str:
    facts = {**machine(), **(extra or {})}
    return " · ".join(f"{key} {value}" for key, value in facts.items())


def print_table(title: str, figures: Sequence[Figure], out: TextIO = sys.stdout) -> None:
    """A titled table: figure, value, target, pass/MISS, note."""
    rows = [("figure", "value", "target", "result", "note")]
    rows += [(f.name, f.shown(), f.target, f.verdict, f.note) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"\n== {title} ==", file=out)
    for n, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(4)]
        line = "  ".join(cells) + (f"  {row[4]}" if row[4] else "")
        print(line.rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
    out.flush()


def note(text: str, out: TextIO = sys.stdout) -> None:
    print(text, file=out)
    out.flush()
