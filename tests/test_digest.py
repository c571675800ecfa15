"""A manager's digest over a small seeded team, on the shipped playbook."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from flows.digest import (
    DealSnapshot,
    Digest,
    MoveSnapshot,
    RepSnapshot,
    StageLine,
    build_digest,
)
from flows.playbook import FieldSpec, load_playbook

PLAYBOOK = load_playbook()
NOW = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
SINCE = NOW - timedelta(days=1)
TODAY = date(2026, 3, 10)
LONG_AGO = datetime(2025, 6, 1, tzinfo=UTC)
RECENTLY = NOW - timedelta(hours=2)
DM_PLUS_2 = {"name": "王总", "title": "CIO", "role": "decision_maker", "attitude": 2}
DM_PLUS_1 = {**DM_PLUS_2, "attitude": 1}


def sample(spec: FieldSpec) -> Any:
    return {
        "text": "text",
        "number": 10,
        "money": 50_000_000,
        "percent": 30,
        "date": "2026-04-01",
        "milestone": {"date": "2026-04-01", "owner": "IT"},
        "choice": spec.options[0].id if spec.options else None,
        "multichoice": [spec.options[0].id] if spec.options else None,
        "yesno": True,
        "list": ["Acme"],
        "stakeholder": [DM_PLUS_2],
    }[spec.type]


def completed(*stage_ids: str, **overrides: Any) -> dict[str, Any]:
    """Answers that close every gap of the given stages, then the overrides."""
    answers: dict[str, Any] = {}
    for stage_id in stage_ids:
        stage = PLAYBOOK.stage(stage_id)
        answers |= {spec.id: sample(spec) for spec in stage.fields}
        answers |= {item.id: {"checked": True, "note": None} for item in stage.checklist}
    answers |= overrides
    return {k: v for k, v in answers.items() if v is not None}


def deal(number: int, stage_id: str, answers: dict[str, Any], **rest: Any) -> DealSnapshot:
    fields: dict[str, Any] = {
        "deal_id": 100 + number,
        "number": number,
        "name": f"项目{number}",
        "customer": f"客户{number}",
        "owner_id": 1,
        "owner_name": "张三",
        "stage_id": stage_id,
        "status": "open",
        "amount_minor": None,
        "expected_close": None,
        "created_at": LONG_AGO,
        "updated_at": RECENTLY,
        "paused_until": None,
        "lost_reason": None,
        "answers": answers,
    }
    return DealSnapshot(**(fields | rest))


def move(number: int, kind: str, at: datetime, to_stage: str, **rest: Any) -> MoveSnapshot:
    return MoveSnapshot(
        deal_id=100 + number,
        from_stage=rest.get("from_stage"),
        to_stage=to_stage,
        kind=kind,
        at=at,
        reason=rest.get("reason"),
    )


YESTERDAY = TODAY - timedelta(days=1)
D1 = deal(
    1,
    "potential",
    completed("potential"),
    amount_minor=1_000_000,
    updated_at=NOW - timedelta(days=30),  # exactly the stage's 30 days: not stale yet
)
D2 = deal(2, "potential", {}, updated_at=NOW - timedelta(days=31))  # stale, every gap open
D3 = deal(
    3,
    "approved",
    completed("intent", "approved", decision_makers=[DM_PLUS_1]),
    amount_minor=3_333_333,
)
D4 = deal(
    4,
    "approved",
    completed("intent", "approved", decision_makers=[], key_criteria=None),
    amount_minor=1_000_001,
)
D5 = deal(  # paused through today: neither stale nor blocked, still in coaching
    5,
    "preliminary",
    {},
    amount_minor=501,
    paused_until=TODAY,
    updated_at=NOW - timedelta(days=100),
)
D6 = deal(  # pause ended yesterday; close date passed; no update for 11 days
    6,
    "commercial",
    completed("intent", "approved", "preliminary", "commercial"),
    amount_minor=2_000_002,
    expected_close=YESTERDAY,
    paused_until=YESTERDAY,
    updated_at=NOW - timedelta(days=11),
)
D7 = deal(
    7,
    "won",
    {},
    status="won",
    amount_minor=9_000_000,
    expected_close=YESTERDAY,
    updated_at=NOW - timedelta(days=90),
)
D8 = deal(8, "preliminary", {}, status="lost", amount_minor=7, lost_reason="价格太高")
D9 = deal(
    9,
    "potential",
    {},
    status="lost",
    created_at=SINCE,  # new at the window's first instant, and lost since
    lost_reason="项目取消",
    paused_until=TODAY,
)
D10 = deal(10, "potential", {}, amount_minor=15, created_at=NOW - timedelta(hours=3))
D11 = deal(11, "intent", {}, status="lost", lost_reason="预算不足", updated_at=LONG_AGO)
DEALS = [D10, D3, D7, D1, D9, D5, D2, D8, D6, D4, D11]  # any order

MOVES = [
    move(1, "advance", SINCE - timedelta(seconds=1), "potential"),  # before the window
    move(10, "open", NOW - timedelta(hours=3), "potential"),  # opening: not a stage move
    move(4, "back", NOW - timedelta(hours=5), "approved", from_stage="preliminary"),
    move(3, "advance", SINCE, "approved", from_stage="intent"),  # window start: included
    move(3, "won", NOW - timedelta(hours=6), "won", from_stage="approved"),  # then reopened
    move(3, "reopen", NOW - timedelta(hours=4), "approved", from_stage="won"),
    move(7, "won", NOW - timedelta(hours=8), "won", from_stage="commercial"),
    move(8, "lost", NOW - timedelta(hours=7), "preliminary"),  # no reason on the move
    move(9, "lost", NOW - timedelta(hours=1), "potential", reason="客户撤销项目"),
    move(11, "lost", SINCE - timedelta(days=3), "intent", reason="预算不足"),  # before
    move(6, "advance", NOW, "commercial", from_stage="preliminary"),  # at now: next digest
    move(999, "advance", RECENTLY, "approved", from_stage="intent"),  # another team's deal
]
REPS = [
    RepSnapshot(1, "张三", RECENTLY),
    RepSnapshot(2, "李四", NOW - timedelta(days=4)),
    RepSnapshot(3, "王五", None),
    RepSnapshot(4, "赵六", NOW - timedelta(days=3)),  # exactly 3 days: not idle yet
    RepSnapshot(5, "钱七", NOW - timedelta(days=10)),
]


@pytest.fixture(scope="module")
def digest() -> Digest:
    return build_digest(
        PLAYBOOK, deals=DEALS, moves=MOVES, reps=REPS, since=SINCE, now=NOW, today=TODAY
    )


def numbers(deals) -> list[int]:
    return [d.number for d in deals]


def test_pipeline_by_stage(digest):
    assert digest.pipeline == (
        StageLine("target", 0, 0, 0),
        # 1_000_015 * 10 % = 100_001.5 → 100_002 (half up); D2 has no amount.
        StageLine("potential", 3, 1_000_015, 100_002),
        StageLine("intent", 0, 0, 0),
        # 4_333_334 * 30 % = 1_300_000.2 → 1_300_000.
        StageLine("approved", 2, 4_333_334, 1_300_000),
        StageLine("preliminary", 1, 501, 251),  # 250.5 → 251; the lost D8 is not counted
        StageLine("commercial", 1, 2_000_002, 1_500_002),  # 1_500_001.5 → 1_500_002
        StageLine("won", 0, 0, 0),  # won deals are not in the open pipeline
    )
    assert [line.stage_id for line in digest.pipeline] == [s.id for s in PLAYBOOK.stages]


def test_totals(digest):
    assert digest.total == StageLine("total", 7, 7_333_852, 2_900_255)
    assert digest.total.weighted_minor == sum(line.weighted_minor for line in digest.pipeline)


def test_window(digest):
    assert (digest.since, digest.now, digest.today) == (SINCE, NOW, TODAY)


def test_new_deals(digest):
    assert numbers(digest.new_deals) == [9, 10]


def test_stage_moves(digest):
    got = [(d.number, m.kind, m.from_stage, m.to_stage) for d, m in digest.moves]
    assert got == [(3, "advance", "intent", "approved"), (4, "back", "preliminary", "approved")]
    assert all(d.deal_id == m.deal_id for d, m in digest.moves)


def test_wins(digest):
    # D3 was won and reopened in the window: no longer a win.
    assert [(d.number, m.at) for d, m in digest.wins] == [(7, NOW - timedelta(hours=8))]


def test_losses_with_reasons(digest):
    got = [(d.number, m.reason) for d, m in digest.losses]
    # D8's move has no reason: the deal's lost reason; D11 was lost before the window.
    assert got == [(8, "价格太高"), (9, "客户撤销项目")]


def test_blocked_most_gaps_first(digest):
    got = [(d.number, report.stage_id, report.open_count) for d, report in digest.blocked]
    # D2 and D10 have every potential gap open (11 fields, 4 exit items): by number.
    assert got == [(2, "potential", 15), (10, "potential", 15), (4, "approved", 1)]
    assert [f.id for f in digest.blocked[-1][1].missing] == ["key_criteria"]


def test_stale_and_paused(digest):
    assert numbers(digest.stale) == [2, 6]  # oldest update first; D1 is exactly at the limit
    assert numbers(digest.paused) == [5]  # paused through today; D6's pause ended yesterday
    assert 5 not in numbers(digest.stale)
    assert 5 not in [d.number for d, _ in digest.blocked]
    assert 9 not in numbers(digest.paused)  # a lost deal is not listed as paused


def test_idle_reps(digest):
    assert [rep.name for rep in digest.idle_reps] == ["王五", "钱七", "李四"]


def test_coaching_queue(digest):
    got = [(d.number, flag.id) for d, flag in digest.coaching]
    assert got == [
        (4, "no_supportive_decision_maker"),
        (5, "no_supportive_decision_maker"),
        (5, "no_preliminary_quote"),
        (5, "no_internal_supporter"),
        (6, "close_date_passed"),
    ]
    # D3's decision maker at exactly +1 counts; D7 (won) is past its date but closed.
    flag = digest.coaching[-1][1]
    assert flag.coaching["zh"] and flag.text["en"] == "Expected close date has passed"


def test_empty_team():
    empty = build_digest(PLAYBOOK, deals=[], moves=[], reps=[], since=SINCE, now=NOW, today=TODAY)
    assert [line.count for line in empty.pipeline] == [0] * len(PLAYBOOK.stages)
    assert empty.total == StageLine("total", 0, 0, 0)
    assert empty.new_deals == empty.moves == empty.wins == empty.losses == ()
    assert empty.blocked == empty.stale == empty.paused == empty.idle_reps == empty.coaching == ()


def test_deal_at_an_unknown_stage_is_left_out_of_stage_sections():
    odd = D2._replace(stage_id="retired_stage", created_at=RECENTLY)
    got = build_digest(PLAYBOOK, deals=[odd], moves=[], reps=[], since=SINCE, now=NOW, today=TODAY)
    assert got.total.count == 0
    assert got.blocked == got.stale == got.coaching == ()
    assert numbers(got.new_deals) == [2]


def test_idle_days_is_configurable():
    got = build_digest(
        PLAYBOOK, deals=[], moves=[], reps=REPS, since=SINCE, now=NOW, today=TODAY, idle_days=7
    )
    assert [rep.name for rep in got.idle_reps] == ["王五", "钱七"]


def test_large_team_is_linear():
    deals = [
        D4._replace(deal_id=10_000 + n, number=10_000 + n, updated_at=NOW - timedelta(days=n % 40))
        for n in range(5_000)
    ]
    moves = [move(0, "advance", RECENTLY, "approved", from_stage="intent") for _ in range(5_000)]
    moves = [replace(m, deal_id=10_000 + n) for n, m in enumerate(moves)]
    got = build_digest(
        PLAYBOOK, deals=deals, moves=moves, reps=[], since=SINCE, now=NOW, today=TODAY
    )
    assert got.total.count == 5_000
    assert len(got.moves) == len(got.blocked) == len(got.coaching) == 5_000


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_move_back_reads_as_one_and_a_move_on_as_progress(lang):
    from bot.dialog.digests import change_line
    from bot.dialog.writer import Writer

    writer = Writer(lang, PLAYBOOK, datetime(2026, 11, 26, 10, tzinfo=UTC))
    one = deal(1, "potential", {})
    forward = move(1, "advance", RECENTLY, "intent", from_stage="potential")
    back = move(1, "back", RECENTLY, "potential", from_stage="intent")
    reopened = move(1, "reopen", RECENTLY, "commercial", from_stage="won")
    assert change_line(writer, "move", one, forward).startswith("📈")
    for moved_back in (back, reopened):
        line = change_line(writer, "move", one, moved_back)
        assert line.startswith("📉") and ("退回" in line if lang == "zh" else "moved back" in line)
