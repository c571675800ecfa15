"""How big each benchmark is: the issue's sizes, and tiny ones for the CI smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.seed import Shape


@dataclass(frozen=True)
class Sizes:
    # throughput: reps in teams of 10 with a manager, 50 deals each, 10 answers per deal
    reps: int
    echo_lines: int  # lines each echo user sends, per mode (about a stage's questions)
    rate: float  # open-loop offered updates per second
    throughput_shape: Shape
    # digest: managers over deals, realistic split and the one-big-team worst case
    digest_shape: Shape
    worst_managers: int
    # nudges
    nudges: int
    due_nudges: int
    ticks: int
    # idle
    idle_shape: Shape
    settle_seconds: float


def _throughput(reps: int, deals: int) -> Shape:
    teams = max(reps // 10, 1)
    return Shape(
        teams=teams,
        reps_per_team=reps // teams,
        managers_per_team=1,
        deals=deals,
        answers=deals * 10,
        reserved_per_rep=2,
    )


FULL = Sizes(
    reps=200,
    echo_lines=16,
    rate=100.0,
    throughput_shape=_throughput(200, 10_000),
    # 200 teams, each a manager with 10 reps and 500 deals (50 per rep, as above).
    digest_shape=Shape(
        teams=200, reps_per_team=10, managers_per_team=1, deals=100_000, answers=1_000_000
    ),
    worst_managers=5,
    nudges=1_000_000,
    due_nudges=50,
    ticks=20,
    idle_shape=_throughput(200, 10_000),
    settle_seconds=5.0,
)

QUICK = Sizes(
    reps=10,
    echo_lines=4,
    rate=100.0,
    throughput_shape=_throughput(10, 200),
    digest_shape=Shape(teams=10, reps_per_team=2, managers_per_team=1, deals=200, answers=2_000),
    worst_managers=2,
    nudges=1_000,
    due_nudges=10,
    ticks=3,
    idle_shape=_throughput(20, 200),
    settle_seconds=1.0,
)
