"""The benchmarks at tiny sizes (``python -m bench --quick``), so they cannot rot.

Not a timed test: only that every benchmark runs to the end and prints its figures. The
PostgreSQL parts are skipped, with the reason printed, when the server does not answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.full  # a bot process or a fake Bot API: make test, not make check

ROOT = Path(__file__).resolve().parent.parent
TABLES = (
    "== throughput — PTB echo bot (the floor) ==",
    "== throughput — StageCoach SQLite ==",
    "== digest — SQLite ==",
    "== nudge tick — SQLite ==",
    "== idle footprint — stagecoach run on SQLite ==",
    "== notes: extraction cost ==",
    "== notes: rep effort (messages + taps) ==",
)
POSTGRES_TABLES = (
    "== throughput — StageCoach PostgreSQL ==",
    "== nudge tick — PostgreSQL ==",
)
FIGURES = (
    "saturated throughput",
    "saturated / echo",
    "open loop p99",
    "wall time",
    "peak RSS",
    "tick with due nudges",
    "claim query plan uses an index",
    "start-up to first getUpdates",
    "resident memory, settled (VmRSS)",
    "p99, 600-character note",
    "stage 2, median with one note",
)


@pytest.fixture(scope="module")
def quick_run() -> str:
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    return done.stdout


def test_every_benchmark_prints_its_figures(quick_run: str):
    for title in TABLES:
        assert title in quick_run
    for figure in FIGURES:
        assert figure in quick_run
    assert "== targets ==" in quick_run
    assert "machine: nproc" in quick_run and "python-telegram-bot" in quick_run


def test_postgresql_parts_run_or_say_why_not(quick_run: str):
    if "PostgreSQL parts skipped:" in quick_run:
        pytest.skip(quick_run.split("PostgreSQL parts skipped:", 1)[1].splitlines()[0].strip())
    for title in POSTGRES_TABLES:
        assert title in quick_run


def test_no_run_went_wrong(quick_run: str):
    """The simulated users got the answers they expected and the fake refused nothing."""
    assert "  ! " not in quick_run
