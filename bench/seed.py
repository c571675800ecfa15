"""Bulk test data: teams, members, deals with realistic answers and history, nudges.

Rows go in through SQLAlchemy Core ``insert`` in large batches with explicit ids (the database
is a fresh scratch one), which is 50-100x faster than the ORM and still runs every column's
type (UTC timestamps, JSON/JSONB). Deals sit along a sales funnel; every stage a deal passed
has its required answers and exit checklist, the current stage a share of its own, scaled so the
total number of answers is exactly the one asked for.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, text

from bench.values import pick, value_pools
from flows.playbook import Playbook, load_playbook
from storage.models import Answer, AnswerChange, Deal, Member, StageChange, Team

USER_BASE = 5_000_000  # Telegram user id = USER_BASE + member id
BATCH = 5_000
# Share of deals per stage (target group check .. won), like a real funnel.
FUNNEL = (0.20, 0.55, 0.13, 0.06, 0.03, 0.02, 0.01)
LOST_SHARE, PAUSED_SHARE, RECENT_SHARE = 0.06, 0.02, 0.04
PRODUCTS = ("Training platform", "LMS upgrade", "E-learning rollout", "培训平台", "知识库项目")
CITIES = ("Shanghai", "Beijing", "Shenzhen", "杭州", "成都", "Wuhan", "南京")
KINDS = ("Bank", "Telecom", "Power", "Retail", "University", "集团", "医院")
LOST_REASONS = ("预算取消", "Lost to a competitor on price", "Project postponed")


@dataclass(frozen=True)
class Shape:
    """How much data, and how it is split over teams."""

    teams: int
    reps_per_team: int
    managers_per_team: int
    deals: int
    answers: int
    reserved_per_rep: int = 0  # deals at stage 2 with its questions open, for the drivers
    history: bool = True  # one answer_change row per answer (what the dialog writes)


@dataclass
class Rep:
    user_id: int
    member_id: int
    team_id: int
    reserved: list[int] = field(default_factory=list)  # deal numbers, in the rep's team


@dataclass
class Seeded:
    reps: list[Rep]
    manager_user_ids: list[int]
    rows: dict[str, int]
    seconds: float


@dataclass
class _Deal:
    row: dict[str, Any]
    stage_index: int
    reserved: bool
    keys: list[str] = field(default_factory=list)


def seed(
    engine: Engine,
    shape: Shape,
    *,
    now: datetime,
    playbook: Playbook | None = None,
    rng_seed: int = 7,
) -> Seeded:
    """Fill a migrated, empty database; returns the reps (with their reserved deals)."""
    started = time.perf_counter()
    playbook = playbook or load_playbook(None)
    rng = random.Random(rng_seed)
    pools = value_pools(playbook, now)
    teams, members, reps, managers = _people(shape, now)
    deals = _deals(shape, playbook, reps, now, rng)
    per_team = Counter(d.row["team_id"] for d in deals)
    for team in teams:
        team["next_deal_number"] = per_team[team["id"]] + 1
    _allocate_answers(deals, shape.answers, playbook, rng)
    answers, changes = _answers(deals, pools, playbook, now, rng, shape.history)
    moves = _stage_changes(deals, playbook, rng)
    rows = {
        "team": teams,
        "member": members,
        "deal": [d.row for d in deals],
        "answer": answers,
        "answer_change": changes,
        "stage_change": moves,
    }
    tables = {
        "team": Team.__table__,
        "member": Member.__table__,
        "deal": Deal.__table__,
        "answer": Answer.__table__,
        "answer_change": AnswerChange.__table__,
        "stage_change": StageChange.__table__,
    }
    with engine.begin() as connection:
        for name, table in tables.items():
            insert_rows(connection, table, rows[name])
    reset_sequences(engine, tables.values())
    counts = {name: len(value) for name, value in rows.items()}
    return Seeded(reps, managers, counts, time.perf_counter() - started)


def insert_rows(connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    for chunk in _chunks(rows, BATCH):
        connection.execute(table.insert(), chunk)


def reset_sequences(engine: Engine, tables: Iterable[Table]) -> None:
    """After inserts with explicit ids, PostgreSQL's id sequences must move past them."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in tables:
            name = table.name
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                    f'COALESCE((SELECT max(id) FROM "{name}"), 0) + 1, false)'
                )
            )


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- people ----------------------------------------------------------------------------------


def _people(shape: Shape, now: datetime):
    teams, members, reps, managers = [], [], [], []
    joined = now - timedelta(days=400)
    member_id = 0
    for team_id in range(1, shape.teams + 1):
        teams.append(
            {"id": team_id, "name": f"Sales {team_id:03d}", "next_deal_number": 1}
            | {"created_at": joined}
        )
        for n in range(shape.managers_per_team + shape.reps_per_team):
            member_id += 1
            manager = n < shape.managers_per_team
            user_id = USER_BASE + member_id
            members.append(
                {
                    "id": member_id,
                    "team_id": team_id,
                    "telegram_user_id": user_id,
                    "display_name": f"经理{member_id}" if manager else f"Rep {member_id}",
                    "role": "manager" if manager else "rep",
                    "language": "zh" if manager else "en",
                    "timezone": "Asia/Shanghai",
                    "active": True,
                    "created_at": joined,
                }
            )
            if manager:
                managers.append(user_id)
            else:
                reps.append(Rep(user_id, member_id, team_id))
    return teams, members, reps, managers


# -- deals -----------------------------------------------------------------------------------


def _deals(
    shape: Shape, playbook: Playbook, reps: list[Rep], now: datetime, rng: random.Random
) -> list[_Deal]:
    by_team: dict[int, list[Rep]] = {}
    for rep in reps:
        by_team.setdefault(rep.team_id, []).append(rep)
    deals: list[_Deal] = []
    last = len(playbook.stages) - 1
    for team_id, team_reps in by_team.items():
        count = shape.deals // shape.teams + (1 if team_id <= shape.deals % shape.teams else 0)
        reserved = shape.reserved_per_rep * len(team_reps)
        for number in range(1, count + 1):
            rep = team_reps[(number - 1) % len(team_reps)]
            if number <= reserved:
                stage_index, status = 1, "open"
                rep.reserved.append(number)
            else:
                stage_index = rng.choices(range(len(FUNNEL)), FUNNEL)[0]
                lost = stage_index < last and rng.random() < LOST_SHARE
                status = "won" if stage_index == last else "lost" if lost else "open"
            row = _deal_row(len(deals) + 1, team_id, number, rep, stage_index, status, now, rng)
            deals.append(_Deal(row, stage_index, number <= reserved))
    for deal in deals:
        deal.row["stage_id"] = playbook.stages[deal.stage_index].id
    return deals


def _deal_row(
    deal_id: int,
    team_id: int,
    number: int,
    rep: Rep,
    stage_index: int,
    status: str,
    now: datetime,
    rng: random.Random,
) -> dict[str, Any]:
    created = now - timedelta(days=rng.uniform(1, 365))
    if rng.random() < RECENT_SHARE:
        updated = now - timedelta(hours=rng.uniform(0.1, 20))
    else:
        updated = created + (now - created) * rng.random()
    paused = status == "open" and rng.random() < PAUSED_SHARE
    return {
        "id": deal_id,
        "team_id": team_id,
        "number": number,
        "name": f"{rng.choice(PRODUCTS)} {2026 + deal_id % 3}",
        "customer": f"{rng.choice(CITIES)} {rng.choice(KINDS)} {deal_id}",
        "owner_id": rep.member_id,
        "stage_id": "",
        "status": status,
        "amount_minor": None,
        "currency": "CNY",
        "expected_close": None,
        "lost_reason": rng.choice(LOST_REASONS) if status == "lost" else None,
        "outside_target": False,
        "paused_until": (now + timedelta(days=rng.randint(3, 40))).date() if paused else None,
        "pause_reason": "客户预算周期" if paused else None,
        "created_at": min(created, updated),
        "updated_at": updated,
    }


# -- answers ---------------------------------------------------------------------------------


def _passed_keys(playbook: Playbook, stage_index: int) -> list[str]:
    """What a deal at ``stage_index`` answered to get there: earlier stages' gaps closed."""
    keys = []
    for stage in playbook.stages[:stage_index]:
        keys += [f.id for f in stage.fields if f.required and not f.ask_if]
        keys += [i.id for i in stage.checklist]
    return keys


def _own_keys(playbook: Playbook, stage_index: int) -> list[str]:
    stage = playbook.stages[stage_index]
    return [f.id for f in stage.fields if not f.ask_if] + [i.id for i in stage.checklist]


def _allocate_answers(
    deals: list[_Deal], total: int, playbook: Playbook, rng: random.Random
) -> None:
    """Give each deal its passed stages' answers and a share of its own stage's, ``total`` in
    all (as close as the stages allow)."""
    qualifying = [f.id for f in playbook.stages[0].fields]
    team_field = "project_team"
    fixed, flexible = [], []
    for deal in deals:
        if deal.reserved:
            # The drivers' deals: target group answered, people known, stage 2 questions open.
            deal.keys = [*qualifying, team_field]
            fixed.append(deal)
        else:
            deal.keys = _passed_keys(playbook, deal.stage_index)
            flexible.append(deal)
    room = {id(d): _own_keys(playbook, d.stage_index) for d in flexible}
    spare = sum(len(v) for v in room.values())
    extra = total - sum(len(d.keys) for d in deals)
    share = min(max(extra / spare, 0.0), 1.0) if spare else 0.0
    for deal in flexible:
        own = room[id(deal)]
        take = int(share * len(own) + rng.random())
        deal.keys += own[: min(take, len(own))]
    _adjust(flexible, room, total - sum(len(d.keys) for d in deals), rng)


def _adjust(flexible: list[_Deal], room: dict[int, list[str]], diff: int, rng: random.Random):
    """Add or remove single own-stage answers until the total is exact."""
    order = list(flexible)
    rng.shuffle(order)
    for deal in order:
        if diff == 0:
            return
        own = room[id(deal)]
        taken = [k for k in deal.keys if k in own]
        if diff > 0 and len(taken) < len(own):
            deal.keys.append(own[len(taken)])
            diff -= 1
        elif diff < 0 and taken:
            deal.keys.remove(taken[-1])
            diff += 1


def _answers(
    deals: list[_Deal],
    pools: dict[str, list[Any]],
    playbook: Playbook,
    now: datetime,
    rng: random.Random,
    history: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    attributes = {
        f.id: f.deal_attribute for s in playbook.stages for f in s.fields if f.deal_attribute
    }
    answers, changes = [], []
    for deal in deals:
        row = deal.row
        span = row["updated_at"] - row["created_at"]
        for n, key in enumerate(deal.keys, 1):
            value = pick(pools, key, rng)
            at = row["created_at"] + span * (n / len(deal.keys))
            answers.append(
                {
                    "id": len(answers) + 1,
                    "deal_id": row["id"],
                    "key": key,
                    "value": value,
                    "updated_by": row["owner_id"],
                    "updated_at": at,
                }
            )
            if history:
                changes.append(
                    {
                        "id": len(changes) + 1,
                        "deal_id": row["id"],
                        "key": key,
                        "old_value": None,
                        "new_value": value,
                        "changed_by": row["owner_id"],
                        "changed_at": at,
                    }
                )
            if attributes.get(key) == "amount":
                row["amount_minor"] = value
            elif attributes.get(key) == "expected_close":
                row["expected_close"] = datetime.fromisoformat(value).date()
    return answers, changes


def _stage_changes(
    deals: list[_Deal], playbook: Playbook, rng: random.Random
) -> list[dict[str, Any]]:
    stages = [s.id for s in playbook.stages]
    moves: list[dict[str, Any]] = []

    def add(row, from_stage, to_stage, kind, at, reason=None):
        moves.append(
            {
                "id": len(moves) + 1,
                "deal_id": row["id"],
                "from_stage": from_stage,
                "to_stage": to_stage,
                "kind": kind,
                "changed_by": row["owner_id"],
                "changed_at": at,
                "reason": reason,
                "override": False,
            }
        )

    for deal in deals:
        row = deal.row
        add(row, None, stages[0], "open", row["created_at"])
        steps = deal.stage_index + (1 if row["status"] == "lost" else 0)
        span = row["updated_at"] - row["created_at"]
        for n in range(1, deal.stage_index + 1):
            at = row["created_at"] + span * (n / max(steps, 1))
            kind = "won" if n == len(stages) - 1 else "advance"
            add(row, stages[n - 1], stages[n], kind, at)
        if row["status"] == "lost":
            add(
                row, row["stage_id"], row["stage_id"], "lost", row["updated_at"], row["lost_reason"]
            )
    return moves
