"""One digest tick in a fresh process, so its memory high-water mark is its own.

    python -m bench.digest_worker URL NOW

Two ticks in a row, the claimed digests forgotten before each: first timed, with the RSS
before it and the process's peak after it (VmHWM; nothing else has run yet, so the peak is
the tick's); then under cProfile, for the split into data loading, build_digest, text and
chart, and the top functions. Prints one JSON object.

Imports happen before measuring, bot.dialog.chart (Pillow: about 0.05 s) included:
the running bot imports it with its first chart, so every daily tick after the first finds it
loaded. The import's time is reported on its own.
"""

from __future__ import annotations

import cProfile
import importlib
import json
import pstats
import sys
import time
from datetime import datetime

from sqlalchemy import text

from bot.dialog.writer import DialogConfig
from bot.jobs.digest_runner import DigestRunner
from flows.playbook import load_playbook
from storage.db import make_engine

# Where a tick's time goes: (label, file fragment, function name), by cumulative time.
PARTS = (
    ("data loading", "bot/dialog/digests.py", "load_team"),
    ("data loading", "bot/dialog/digests.py", "digest_since"),
    ("data loading", "storage/digests.py", "claim_digest"),
    ("data loading", "storage/teams.py", "list_all_managers"),
    ("build_digest", "flows/digest.py", "build_digest"),
    ("text", "bot/dialog/digests.py", "_text"),
    ("chart", "bot/dialog/chart.py", "funnel_png"),
)


def _status(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status("VmRSS")


def peak_mb() -> float:
    """This process's RSS high-water mark since exec (VmHWM). getrusage's ru_maxrss is not
    used: Linux carries it over from the parent across fork and exec, so a child of a big
    parent reports the parent's peak."""
    return _status("VmHWM")


def split(profile: cProfile.Profile, total: float) -> dict:
    stats = pstats.Stats(profile).stats
    parts: dict[str, float] = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.items():
        for label, fragment, function in PARTS:
            if name == function and path.endswith(fragment):
                parts[label] = parts.get(label, 0.0) + cumulative
    parts["other"] = max(total - sum(parts.values()), 0.0)
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:10]
    return {
        "split_s": parts,
        "top": [
            {"function": f"{path.split('site-packages/')[-1]}:{line}({name})", "own_s": row[2]}
            for (path, line, name), row in top
        ],
    }


def main(url: str, now_text: str) -> dict:
    engine = make_engine(url)
    runner = DigestRunner(
        engine,
        load_playbook(None),
        DialogConfig(),
        digest_time=datetime.strptime("08:30", "%H:%M").time(),
        instance="bench",
    )
    now = datetime.fromisoformat(now_text)
    started = time.perf_counter()
    importlib.import_module("bot.dialog.chart")
    chart_import_s = time.perf_counter() - started

    def tick() -> tuple[list, float]:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM digest_run"))
        started = time.perf_counter()
        jobs = runner.due(now, any_time=True)
        return jobs, time.perf_counter() - started

    result: dict = {"rss_before_mb": rss_mb(), "chart_import_s": chart_import_s}
    jobs, result["seconds"] = tick()
    result["peak_rss_mb"] = peak_mb()
    result["digests"] = len(jobs)
    photos = [reply.photo for job in jobs for reply in job.replies if reply.photo]
    result["charts"], result["chart_kb"] = len(photos), sum(map(len, photos)) / 1024
    del jobs, photos

    profile = cProfile.Profile()
    profile.enable()
    _, profiled = tick()
    profile.disable()
    result["profiled_s"] = profiled
    result.update(split(profile, profiled))
    engine.dispose()
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
