"""A manager's digest: team data from storage, the digest model from flows, text and chart.

Sections are capped so the message stays readable on a phone; the delivery splits what is
still longer than Telegram allows.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlmodel import Session

from bot.dialog import render
from bot.dialog.access import MANAGING_ROLES
from bot.dialog.events import Reply
from bot.dialog.turn import CommandRoutes, Turn
from bot.dialog.writer import Writing
from flows.digest import (
    DealFacts,
    DealSnapshot,
    Digest,
    FactChecker,
    MoveSnapshot,
    RepSnapshot,
    build_digest,
)
from flows.i18n import LANGUAGES
from flows.playbook import Playbook
from storage.digests import (
    last_activity_by_member,
    last_digest_at,
    open_deal_answers,
    team_deals,
    team_moves_since,
)
from storage.models import Member
from storage.teams import get_team, list_members

T = TypeVar("T")
SECTION_LIMIT = 8  # items per section; the rest are counted
MOVES_BACK = ("back", "reopen")  # stage changes a manager reads as a deal going backwards
FIRST_DIGEST_WINDOW = timedelta(days=1)


@dataclass
class TeamData:
    """What every digest of one team is built from (loaded once per tick, shared)."""

    team_name: str
    since: datetime  # moves are loaded from here on
    today: date  # the local day the deals' facts (past dates) were worked out for
    deals: list[DealSnapshot]  # without their answers: ``facts`` holds what the digest needs
    facts: dict[int, DealFacts]
    moves: list[MoveSnapshot]
    reps: list[RepSnapshot]
    # The same for every manager of the team: built once per window, drawn once per language.
    digests: dict[tuple[datetime, datetime, date, int], Digest] = field(default_factory=dict)
    charts: dict[str, bytes] = field(default_factory=dict)


def load_team(
    session: Session, team_id: int, since: datetime, today: date, playbook: Playbook
) -> TeamData:
    """The team's deals (with their open deals' facts), moves since ``since`` and reps' activity."""
    with bulk_objects():
        return _load_team(session, team_id, since, today, playbook)


@contextmanager
def bulk_objects() -> Iterator[None]:
    """No cyclic garbage collection while a team's objects are made (for a large team, much
    of the time would go on collections that rescan the growing heap and find nothing: these
    objects form no cycles, reference counting frees them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_team(
    session: Session, team_id: int, since: datetime, today: date, playbook: Playbook
) -> TeamData:
    members = list_members(session, team_id=team_id)
    names = {m.id: m.display_name for m in members}
    deals = [_snapshot(row, names) for row in team_deals(session, team_id=team_id)]
    moves = [MoveSnapshot(*row) for row in team_moves_since(session, team_id=team_id, since=since)]
    activity = last_activity_by_member(session, team_id=team_id)
    reps = [
        RepSnapshot(m.id, m.display_name, activity.get(m.id))
        for m in members
        if m.role == "rep" and m.active
    ]
    facts = _facts(session, team_id, deals, today, playbook)
    name = get_team(session, team_id=team_id).name
    return TeamData(name, since, today, deals, facts, moves, reps)


NO_ANSWERS: Mapping[str, Any] = MappingProxyType({})


def _snapshot(row: Row, names: dict[int, str]) -> DealSnapshot:
    # In DIGEST_DEAL_COLUMNS order; unpacked at once, as a row's attributes are slow to read.
    (deal_id, number, name, customer, owner_id, stage_id, status, amount, close) = row[:9]
    (created_at, updated_at, paused_until, lost_reason) = row[9:]
    return DealSnapshot(
        deal_id=deal_id,
        number=number,
        name=name,
        customer=customer,
        owner_id=owner_id,
        owner_name=names.get(owner_id, "?"),
        stage_id=stage_id,
        status=status,
        amount_minor=amount,
        expected_close=close,
        created_at=created_at,
        updated_at=updated_at,
        paused_until=paused_until,
        lost_reason=lost_reason,
        answers=NO_ANSWERS,
    )


def _facts(
    session: Session, team_id: int, deals: list[DealSnapshot], today: date, playbook: Playbook
) -> dict[int, DealFacts]:
    """Each open deal's facts, worked out as its answers stream by (they are not kept).

    A deal without answers is left out: build_digest checks it with its (empty) answers.
    """
    checker = FactChecker(playbook)
    stages = {stage.id for stage in playbook.stages}
    by_id = {deal.deal_id: deal for deal in deals}
    facts: dict[int, DealFacts] = {}
    for deal_id, answers in open_deal_answers(session, team_id=team_id, keys=checker.keys):
        deal = by_id.get(deal_id)  # None: opened after the deals were read
        if deal is not None and deal.stage_id in stages:
            facts[deal_id] = checker.facts(
                stage_id=deal.stage_id,
                answers=answers,
                expected_close=deal.expected_close,
                today=today,
            )
    return facts


def digest_command(turn: Turn, args: str) -> None:
    """``/digest``: the team digest now (it does not count as the daily one)."""
    if turn.member.role not in MANAGING_ROLES:
        return turn.say(turn.text("digest.not_manager"))
    since = digest_since(turn.session, turn.member, turn.now)
    team = load_team(turn.session, turn.member.team_id, since, turn.now.date(), turn.playbook)
    turn.response.replies.extend(digest_replies(turn, team, since, turn.config.idle_days))


def digest_since(session: Session, member: Member, now: datetime) -> datetime:
    return last_digest_at(session, member_id=member.id) or now - FIRST_DIGEST_WINDOW


def digest_replies(writer: Writing, team: TeamData, since: datetime, idle_days: int) -> list[Reply]:
    """The chart (with a short caption as its text) and the digest text, for one manager."""
    digest = team_digest(writer, team, since, idle_days)
    if writer.lang not in team.charts:
        from bot.dialog.chart import funnel_png  # Pillow and the fonts load on the first chart

        title = {lang: writer.in_language(lang).label("digest.chart_title") for lang in LANGUAGES}
        team.charts[writer.lang] = funnel_png(
            _funnel(writer, digest), lang=writer.lang, title=title
        )
    text = render.join(_text(writer, team, digest, idle_days))
    refused = writer.text("digest.chart_refused")
    return [Reply(text, photo=team.charts[writer.lang], photo_refused=refused)]


def team_digest(writer: Writing, team: TeamData, since: datetime, idle_days: int) -> Digest:
    """The team's digest for this window, built once for all its managers who share it."""
    today = writer.now.date()
    if today != team.today:
        raise ValueError(f"team data loaded for {team.today}, not {today}")
    key = (since, writer.now, today, idle_days)
    if key not in team.digests:
        with bulk_objects():
            team.digests[key] = build_digest(
                writer.playbook,
                deals=team.deals,
                moves=team.moves,
                reps=team.reps,
                since=since,
                now=writer.now,
                today=today,
                idle_days=idle_days,
                facts=team.facts,
            )
    return team.digests[key]


def _funnel(writer: Writing, digest: Digest) -> list:
    from bot.dialog.chart import FunnelRow

    stages = {s.id: s for s in writer.playbook.stages}
    return [
        FunnelRow(stages[line.stage_id].name, line.count, writer.money(line.weighted_minor))
        for line in digest.pipeline
        if line.stage_id in stages and not stages[line.stage_id].qualifying
    ]


def _text(writer: Writing, team: TeamData, digest: Digest, idle_days: int) -> list[str]:
    day = render.show_date(writer, digest.today)
    lines = [writer.text("digest.title", team=team.team_name, date=day)]
    lines += _pipeline(writer, digest)
    lines += _changes(writer, digest)
    lines += _section(
        writer,
        "digest.blocked",
        digest.blocked,
        lambda item: writer.text(
            "digest.blocked_line", deal=_deal(writer, item[0]), count=item[1].open_count
        ),
    )
    lines += _section(
        writer,
        "digest.stale",
        digest.stale,
        lambda d: writer.text(
            "digest.stale_line", deal=_deal(writer, d), days=(digest.now - d.updated_at).days
        ),
    )
    lines += _section(
        writer,
        "digest.paused",
        digest.paused,
        lambda d: writer.text(
            "digest.paused_line",
            deal=_deal(writer, d),
            until=render.show_date(writer, d.paused_until),
        ),
    )
    lines += _section(
        writer,
        "digest.idle",
        digest.idle_reps,
        lambda r: (
            writer.text("digest.idle_line", name=r.name, days=(digest.now - r.last_update).days)
            if r.last_update
            else writer.text("digest.idle_never", name=r.name)
        ),
        days=idle_days,
    )
    lines += _section(
        writer,
        "digest.coaching",
        digest.coaching,
        lambda item: writer.text(
            "digest.coaching_line",
            deal=_deal(writer, item[0]),
            flag=writer.local(item[1].text),
            question=writer.local(item[1].coaching),
        ),
    )
    return lines


def _pipeline(writer: Writing, digest: Digest) -> list[str]:
    lines = [writer.text("digest.pipeline")]
    for line in digest.pipeline:
        if line.count:
            lines.append(
                writer.text(
                    "digest.pipeline_line",
                    stage=render.stage_name(writer, line.stage_id),
                    count=line.count,
                    amount=writer.money(line.amount_minor),
                    weighted=writer.money(line.weighted_minor),
                )
            )
    total = digest.total
    lines.append(
        writer.text(
            "digest.pipeline_total",
            count=total.count,
            amount=writer.money(total.amount_minor),
            weighted=writer.money(total.weighted_minor),
        )
    )
    return lines


def _changes(writer: Writing, digest: Digest) -> list[str]:
    changes = [("new", d, None) for d in digest.new_deals]
    changes += [("move", d, m) for d, m in digest.moves]
    changes += [("won", d, m) for d, m in digest.wins]
    changes += [("lost", d, m) for d, m in digest.losses]
    lines = _section(writer, "digest.changes", changes, lambda c: change_line(writer, *c))
    return lines or [writer.text("digest.no_changes")]


def change_line(writer: Writing, kind: str, deal: DealSnapshot, move: MoveSnapshot | None) -> str:
    """One line of the digest's changes: a new deal, a move (forward or back), a win, a loss."""
    if kind == "new":
        return writer.text("digest.new_line", deal=_deal(writer, deal))
    if kind == "won":
        return writer.text(
            "digest.won_line", deal=_deal(writer, deal), amount=writer.money(deal.amount_minor)
        )
    if kind == "lost":
        return writer.text("digest.lost_line", deal=_deal(writer, deal), reason=move.reason or "")
    back = move.kind in MOVES_BACK
    return writer.text(
        "digest.move_back_line" if back else "digest.move_line",
        deal=_deal(writer, deal),
        from_stage=render.stage_name(writer, move.from_stage) if move.from_stage else "",
        to_stage=render.stage_name(writer, move.to_stage),
    )


def _section(
    writer: Writing, title_key: str, rows: Sequence[T], show: Callable[[T], str], **params: Any
) -> list[str]:
    """A titled list of at most SECTION_LIMIT rows (only those are formatted), then a count."""
    if not rows:
        return []
    shown = [show(row) for row in rows[:SECTION_LIMIT]]
    more = len(rows) - len(shown)
    tail = [writer.text("digest.more", count=more)] if more else []
    return ["", writer.text(title_key, count=len(rows), **params), *shown, *tail]


def _deal(writer: Writing, deal: DealSnapshot) -> str:
    return writer.text(
        "digest.deal",
        number=deal.number,
        name=deal.name,
        customer=deal.customer,
        rep=deal.owner_name,
    )


COMMANDS: CommandRoutes = {"digest": digest_command}
