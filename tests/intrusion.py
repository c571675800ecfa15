"""Two teams, their secrets and their intruders, for the access-control and abuse tests.

``seed`` builds team A (reps A1 and A2, manager AM, a removed member R) and team B (rep B1,
manager BM), each with a linked group, deals whose name, customer, answers and reasons carry
unique upper-case tokens (``QQ...``), a pending nudge and a pending exception request. A token
showing up where its team may not look is a leak; ``snapshot`` / ``changed_rows`` tell which
rows changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel, select

from storage.answers import save_answer
from storage.db import transaction
from storage.deals import change_stage, create_deal, set_deal_attributes
from storage.groups import link_group
from storage.invites import create_invite
from storage.models import (
    AdvanceRequest,
    Answer,
    AnswerChange,
    Conversation,
    Deal,
    DigestRun,
    Invite,
    Member,
    Nudge,
    NudgeMute,
    StageChange,
    Team,
    TeamGroup,
)
from storage.nudges import schedule_nudge
from storage.requests import create_advance_request
from storage.teams import add_member, create_team, update_member
from tests.fake_bot_api import ApiError, FakeBotApi

# Telegram user ids.
A1, A2, AM, R = 1001, 1002, 1003, 1004  # team A: reps, manager, removed member
B1, BM = 2001, 2003  # team B: rep, manager
S1, S2 = 3001, 3002  # strangers
# Group chats: team A's, team B's, and one linked to no team.
GA, GB, GX = -100101, -100202, -100303
GROUP_TITLES = {GA: "Alpha <b>desk</b> & co", GB: "Beta *desk* `x`", GX: "Lobby [x](y)"}

MANAGING = ("manager", "admin")
TELEGRAM_SIDE = ("removed_at", "chat_id")  # team_group columns that follow Telegram events
TABLES: tuple[type[SQLModel], ...] = (
    Team,
    Member,
    Deal,
    Answer,
    AnswerChange,
    StageChange,
    Conversation,
    TeamGroup,
    Invite,
    AdvanceRequest,
    Nudge,
    NudgeMute,
    DigestRun,
)
DEAL_CHILDREN = (Answer, AnswerChange, StageChange, AdvanceRequest, Nudge, NudgeMute)


@dataclass(frozen=True)
class SeedDeal:
    key: str  # "A1", "A1P" (paused), "A1L" (lost), "A2", "R", "B1"
    user: int  # the owner's Telegram id
    team: str  # "A" or "B"
    name: str
    customer: str
    status: str = "open"

    @property
    def tokens(self) -> tuple[str, ...]:
        """Upper-case markers only this deal's text carries (name, customer, answers, reasons)."""
        return tuple(f"QQ{self.key}{part}" for part in ("NAME", "CUST", "ANSWER", "WHY"))


SEED_DEALS = (
    SeedDeal("A1", A1, "A", "Kestrel QQA1NAME", "QQA1CUST Ltd"),
    SeedDeal("A1P", A1, "A", "Paused QQA1PNAME", "QQA1PCUST Ltd"),
    SeedDeal("A1L", A1, "A", "Lost QQA1LNAME", "QQA1LCUST Ltd", status="lost"),
    SeedDeal("A2", A2, "A", "Heron QQA2NAME", "QQA2CUST Ltd"),
    SeedDeal("R", R, "A", "Owl QQRNAME", "QQRCUST Ltd"),  # paused too
    SeedDeal("B1", B1, "B", "Osprey QQB1NAME", "QQB1CUST Ltd"),
)
ALL_TOKENS = {token: deal for deal in SEED_DEALS for token in deal.tokens}


@dataclass
class Seed:
    team: dict[str, int]  # "A"/"B" -> team id
    member: dict[int, int]  # Telegram id -> member id
    deal: dict[str, int]  # SeedDeal.key -> deal id
    number: dict[str, int]  # SeedDeal.key -> deal number in its team
    nudge: dict[str, int]  # "A1"/"B1" -> a pending nudge id of that deal
    request: dict[str, int]  # "A1"/"B1" -> a pending exception request id
    invites: list[str] = field(default_factory=list)  # unused team B rep invite codes


def seed(engine: Engine, now: datetime, *, invites: int = 0) -> Seed:
    """Both teams, their groups, deals, a nudge and a request each (committed)."""
    with transaction(engine) as session:
        teams = {
            "A": create_team(session, name="Alpha & <Co>", now=now).id,
            "B": create_team(session, name="Beta *bold* `x`", now=now).id,
        }
        people = {
            A1: ("A", "Ann <i>", "rep"),
            A2: ("A", "Al & Bo", "rep"),
            AM: ("A", "Meg", "manager"),
            R: ("A", "Rex", "rep"),
            B1: ("B", "Bea", "rep"),
            BM: ("B", "Max", "manager"),
        }
        members = {
            user: add_member(
                session,
                team_id=teams[team],
                telegram_user_id=user,
                display_name=name,
                role=role,
                language="en",
                timezone="Asia/Shanghai",
                now=now,
            ).id
            for user, (team, name, role) in people.items()
        }
        deals: dict[str, int] = {}
        numbers: dict[str, int] = {}
        for spec in SEED_DEALS:
            deal = create_deal(
                session,
                team_id=teams[spec.team],
                owner_id=members[spec.user],
                name=spec.name,
                customer=spec.customer,
                stage_id="potential",
                currency="CNY",
                now=now,
            )
            deals[spec.key], numbers[spec.key] = deal.id, deal.number
            owner = members[spec.user]
            for key, value in (
                ("industry", "finance"),
                ("needs_training_it", True),
                ("fits_profile", True),
                ("customer_background", f"{spec.tokens[2]} <b>bg</b> & *x*"),
                ("budget", 50_000_000),
            ):
                save_answer(
                    session, deal_id=deal.id, key=key, value=value, member_id=owner, now=now
                )
            set_deal_attributes(session, deal_id=deal.id, now=now, amount_minor=50_000_000)
            if spec.key in ("A1P", "R"):
                set_deal_attributes(
                    session,
                    deal_id=deal.id,
                    now=now,
                    paused_until=date(2027, 3, 1),
                    pause_reason=spec.tokens[3],
                )
            if spec.status == "lost":
                change_stage(
                    session,
                    deal_id=deal.id,
                    to_stage="potential",
                    kind="lost",
                    member_id=owner,
                    now=now,
                    reason=spec.tokens[3],
                )
        nudges = {
            key: schedule_nudge(
                session,
                member_id=members[user],
                deal_id=deals[key],
                kind="gap",
                due_at=now + timedelta(days=1),
                now=now,
            ).id
            for key, user in (("A1", A1), ("B1", B1))
        }
        requests = {
            key: create_advance_request(
                session,
                deal_id=deals[key],
                requested_by=members[user],
                from_stage="potential",
                to_stage="intent",
                reason=f"QQ{key}WHY",
                now=now,
            ).id
            for key, user in (("A1", A1), ("B1", B1))
        }
        link_group(
            session,
            team_id=teams["A"],
            chat_id=GA,
            title=GROUP_TITLES[GA],
            member_id=members[AM],
            now=now,
        )
        link_group(
            session,
            team_id=teams["B"],
            chat_id=GB,
            title=GROUP_TITLES[GB],
            member_id=members[BM],
            now=now,
        )
        codes = [
            create_invite(session, team_id=teams["B"], role="rep", now=now) for _ in range(invites)
        ]
        update_member(session, member_id=members[R], active=False)
    return Seed(teams, members, deals, numbers, nudges, requests, codes)


# -- who may see what ----------------------------------------------------------------------


def viewers(spec: SeedDeal) -> set[int]:
    """Private chats (Telegram ids) that may read about a seeded deal: owner, its managers."""
    if spec.key == "R":
        return {AM}  # its owner was removed from the team
    return {spec.user, AM if spec.team == "A" else BM}


def leaked_tokens(text: str, chat_id: int, allowed_groups: dict[str, set[int]]) -> list[str]:
    """Tokens in ``text`` of deals that ``chat_id`` may not read about.

    Args:
        allowed_groups: team ("A"/"B") -> group chat ids that may hear of its deals.
    """
    found = []
    for token, spec in ALL_TOKENS.items():
        if token not in text:
            continue
        allowed = chat_id in viewers(spec) or chat_id in allowed_groups.get(spec.team, set())
        if not allowed:
            found.append(token)
    return found


def tokens_in(text: str) -> list[str]:
    return [token for token in ALL_TOKENS if token in text]


# -- what the fake Bot API refused ---------------------------------------------------------


@dataclass
class Rejection:
    status: int
    description: str
    parameters: dict[str, Any] | None
    method: str
    params: dict[str, Any]

    def __str__(self) -> str:
        shown = {
            k: (v if len(repr(v)) < 200 else repr(v)[:200] + "...") for k, v in self.params.items()
        }
        return f"{self.status} {self.description!r} for {self.method} {shown}"


def watch_rejections(fake: FakeBotApi) -> list[Rejection]:
    """Record every error answer the fake gives, without changing the fake itself.

    ``FakeBotApi._reply`` is where every answer goes; for every method but getUpdates
    (the only one that waits) the request being answered is the last one recorded, since
    nothing awaits between recording a request and answering it.
    """
    rejections: list[Rejection] = []
    original = fake._reply

    def reply(outcome: Any):
        if isinstance(outcome, ApiError):
            method, params = fake.requests[-1] if fake.requests else ("?", {})
            rejections.append(
                Rejection(
                    outcome.error_code, outcome.description, outcome.parameters, method, params
                )
            )
        return original(outcome)

    fake._reply = reply  # an instance attribute shadows the static method
    return rejections


# -- database snapshots --------------------------------------------------------------------

Snapshot = dict[str, dict[Any, dict[str, Any]]]


def _key(row: SQLModel) -> Any:
    if isinstance(row, Conversation):
        return row.member_id
    if isinstance(row, TeamGroup):
        return row.team_id
    return row.id


def snapshot(engine: Engine) -> Snapshot:
    """Every row of every table that holds team data, by table name and primary key."""
    with transaction(engine) as session:
        return {
            model.__tablename__: {
                _key(row): row.model_dump() for row in session.exec(select(model)).all()
            }
            for model in TABLES
        }


def _owned_by(
    table: str, row: dict[str, Any], members: set[int], deals: set[int], teams: set[int]
) -> bool:
    """Whether a row is one that members ``members`` (managing ``teams``) may change."""
    if table == "team_group":
        return row["team_id"] in teams
    if table == "member":
        return row["id"] in members
    if table == "deal":
        return row["id"] in deals
    if table in {m.__tablename__ for m in DEAL_CHILDREN}:
        return row["deal_id"] in deals
    if table in ("conversation", "digest_run"):
        return row["member_id"] in members
    if table == "invite":
        return row["created_by"] in members or row["used_by"] in members
    return False


def changed_rows(before: Snapshot, after: Snapshot, actors: set[int] = frozenset()) -> list[str]:
    """Rows added, removed or changed, except what the actors may change on their own account
    (their member rows, conversations and invites, the deals they may work on) and the teams'
    deal counters.

    Args:
        actors: Telegram ids of who acted; only their active memberships (before or after,
            so one made by an invite counts) act for them.
    """
    mine = {
        row["id"]: row
        for snap in (before, after)
        for row in snap["member"].values()
        if row["telegram_user_id"] in actors and row["active"]
    }
    actor_members = set(mine)
    managed = {row["team_id"] for row in mine.values() if row["role"] in MANAGING}
    deals = {
        row["id"]
        for snap in (before, after)
        for row in snap["deal"].values()
        if row["owner_id"] in actor_members or row["team_id"] in managed
    }
    problems = []
    for table in before:
        old, new = before[table], after[table]
        for key in sorted(set(old) | set(new), key=repr):
            a, b = old.get(key), new.get(key)
            if table == "team":
                a = {k: v for k, v in (a or {}).items() if k != "next_deal_number"} or None
                b = {k: v for k, v in (b or {}).items() if k != "next_deal_number"} or None
            if table == "team_group":
                # Telegram's doing, not a user's: the bot removed from the group (which ends
                # the link; another team may then link it) or the group's new id.
                if a and a["removed_at"] is not None and b is None:
                    continue
                a = {k: v for k, v in (a or {}).items() if k not in TELEGRAM_SIDE} or None
                b = {k: v for k, v in (b or {}).items() if k not in TELEGRAM_SIDE} or None
            if a == b:
                continue
            if any(_owned_by(table, r, actor_members, deals, managed) for r in (a, b) if r):
                continue
            problems.append(f"{table}[{key}]: {a!r} -> {b!r}")
    return problems


def unauthorised_changes(before: Snapshot, after: Snapshot) -> list[str]:
    """New history rows, deals, requests, invites, mutes and group links made by someone who
    may not make them: not an active member of the deal's team, or a rep on another's deal."""
    members = after["member"]
    deals = after["deal"]
    problems = []

    def may_work_on(member_id: int | None, deal_id: int) -> bool:
        member, deal = members.get(member_id), deals.get(deal_id)
        if member is None or deal is None or not member["active"]:
            return False
        if member["team_id"] != deal["team_id"]:
            return False
        return member["role"] in MANAGING or deal["owner_id"] == member_id

    def is_manager_of(member_id: int | None, team_id: int) -> bool:
        member = members.get(member_id)
        return (
            bool(member and member["active"] and member["team_id"] == team_id)
            and member["role"] in MANAGING
        )

    def new(table: str) -> list[dict[str, Any]]:
        return [row for key, row in after[table].items() if key not in before[table]]

    for table, who in (("answer_change", "changed_by"), ("stage_change", "changed_by")):
        for row in new(table):
            if not may_work_on(row[who], row["deal_id"]):
                problems.append(f"{table} by member {row[who]}: {row}")
    for row in new("advance_request"):
        if not may_work_on(row["requested_by"], row["deal_id"]):
            problems.append(f"advance_request by member {row['requested_by']}: {row}")
    for key, row in after["advance_request"].items():
        old = before["advance_request"].get(key)
        decided = row["decided_by"] is not None and (old is None or old["decided_by"] is None)
        if decided and not (
            may_work_on(row["decided_by"], row["deal_id"])
            and members[row["decided_by"]]["role"] in MANAGING
        ):
            problems.append(f"advance_request decided by member {row['decided_by']}: {row}")
    for row in new("deal"):
        owner = members.get(row["owner_id"])
        if owner is None or owner["team_id"] != row["team_id"] or not owner["active"]:
            problems.append(f"deal opened for member {row['owner_id']}: {row}")
    for row in new("nudge_mute"):
        if not may_work_on(row["member_id"], row["deal_id"]):
            problems.append(f"nudge_mute by member {row['member_id']}: {row}")
    for row in new("invite"):
        if not is_manager_of(row["created_by"], row["team_id"]):
            problems.append(f"invite made by member {row['created_by']}: {row}")
    for key, row in after["team_group"].items():
        if row != before["team_group"].get(key) and not is_manager_of(row["linked_by"], key):
            problems.append(f"team_group linked by member {row['linked_by']}: {row}")
    for key, row in before["team_group"].items():
        if key not in after["team_group"] and row["removed_at"] is None:
            # link_group removes a team's link only when another team links the same chat.
            taker = [g for g in after["team_group"].values() if g["chat_id"] == row["chat_id"]]
            problems.append(f"team {key}'s group link {row} was taken over: {taker}")
    for key, row in before["member"].items():
        changed = {k for k in row if row[k] != members.get(key, {}).get(k)}
        if changed - {"language"}:
            problems.append(f"member {key} changed: {row} -> {members.get(key)}")
    return problems
