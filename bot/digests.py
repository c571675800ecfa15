"""A manager's digest: team data from storage, the digest model from flows, text and chart.

Sections are capped so the message stays readable on a phone; the delivery splits what is
still longer than Telegram allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from bot import render
from bot.access import MANAGING_ROLES
from bot.chart import FunnelRow, funnel_png
from bot.events import Reply
from bot.turn import Turn
from flows.digest import DealSnapshot, Digest, MoveSnapshot, RepSnapshot, build_digest
from flows.i18n import LANGUAGES
from storage.digests import (
    answers_of_deals,
    last_activity_by_member,
    last_digest_at,
    list_team_deals,
    stage_changes_since,
)
from storage.models import Member
from storage.teams import get_team, list_members

SECTION_LIMIT = 8  # items per section; the rest are counted
FIRST_DIGEST_WINDOW = timedelta(days=1)


@dataclass
class TeamData:
    """What every digest of one team is built from (loaded once per tick, shared)."""

    team_name: str
    since: datetime  # moves are loaded from here on
    deals: list[DealSnapshot]
    moves: list[MoveSnapshot]
    reps: list[RepSnapshot]
    # The funnel is the same for every manager of the team: draw it once per language.
    charts: dict[str, bytes] = field(default_factory=dict)


def load_team(session: Session, team_id: int, since: datetime) -> TeamData:
    """The team's deals (answers of open ones), moves since ``since`` and reps' activity."""
    members = list_members(session, team_id=team_id)
    names = {m.id: m.display_name for m in members}
    deals = list_team_deals(session, team_id=team_id)
    answers = answers_of_deals(session, deal_ids=[d.id for d in deals if d.status == "open"])
    snapshots = [
        DealSnapshot(
            deal_id=d.id,
            number=d.number,
            name=d.name,
            customer=d.customer,
            owner_id=d.owner_id,
            owner_name=names.get(d.owner_id, "?"),
            stage_id=d.stage_id,
            status=d.status,
            amount_minor=d.amount_minor,
            expected_close=d.expected_close,
            created_at=d.created_at,
            updated_at=d.updated_at,
            paused_until=d.paused_until,
            lost_reason=d.lost_reason,
            answers=answers.get(d.id, {}),
        )
        for d in deals
    ]
    moves = [
        MoveSnapshot(c.deal_id, c.from_stage, c.to_stage, c.kind, c.changed_at, c.reason)
        for c in stage_changes_since(session, team_id=team_id, since=since)
    ]
    activity = last_activity_by_member(session, team_id=team_id)
    reps = [
        RepSnapshot(m.id, m.display_name, activity.get(m.id))
        for m in members
        if m.role == "rep" and m.active
    ]
    return TeamData(get_team(session, team_id=team_id).name, since, snapshots, moves, reps)


def digest_command(turn: Turn, args: str) -> None:
    """``/digest``: the team digest now (it does not count as the daily one)."""
    if turn.member.role not in MANAGING_ROLES:
        return turn.say(turn.text("digest.not_manager"))
    since = digest_since(turn.session, turn.member, turn.now)
    team = load_team(turn.session, turn.member.team_id, since)
    turn.response.replies.extend(digest_replies(turn, team, since, turn.config.idle_days))


def digest_since(session: Session, member: Member, now: datetime) -> datetime:
    return last_digest_at(session, member_id=member.id) or now - FIRST_DIGEST_WINDOW


def digest_replies(turn: Turn, team: TeamData, since: datetime, idle_days: int) -> list[Reply]:
    """The chart (with a short caption as its text) and the digest text, for one manager."""
    digest = build_digest(
        turn.playbook,
        deals=team.deals,
        moves=team.moves,
        reps=team.reps,
        since=since,
        now=turn.now,
        today=turn.now.date(),
        idle_days=idle_days,
    )
    if turn.lang not in team.charts:
        title = {lang: turn.in_language(lang).label("digest.chart_title") for lang in LANGUAGES}
        team.charts[turn.lang] = funnel_png(_funnel(turn, digest), lang=turn.lang, title=title)
    text = render.join(_text(turn, team, digest, idle_days))
    return [Reply(text, photo=team.charts[turn.lang])]


def _funnel(turn: Turn, digest: Digest) -> list[FunnelRow]:
    stages = {s.id: s for s in turn.playbook.stages}
    return [
        FunnelRow(stages[line.stage_id].name, line.count, turn.money(line.weighted_minor))
        for line in digest.pipeline
        if line.stage_id in stages and not stages[line.stage_id].qualifying
    ]



def _text(turn: Turn, team: TeamData, digest: Digest, idle_days: int) -> list[str]:
    lines = [
        turn.text("digest.title", team=team.team_name, date=render.show_date(turn, digest.today))
    ]
    lines += _pipeline(turn, digest)
    lines += _changes(turn, digest)
    lines += _section(
        turn,
        "digest.blocked",
        [
            turn.text("digest.blocked_line", deal=_deal(turn, d), count=r.open_count)
            for d, r in digest.blocked
        ],
    )
    lines += _section(
        turn,
        "digest.stale",
        [
            turn.text(
                "digest.stale_line", deal=_deal(turn, d), days=(digest.now - d.updated_at).days
            )
            for d in digest.stale
        ],
    )
    lines += _section(
        turn,
        "digest.paused",
        [
            turn.text(
                "digest.paused_line",
                deal=_deal(turn, d),
                until=render.show_date(turn, d.paused_until),
            )
            for d in digest.paused
        ],
    )
    lines += _section(
        turn,
        "digest.idle",
        [
            turn.text("digest.idle_line", name=r.name, days=(digest.now - r.last_update).days)
            if r.last_update
            else turn.text("digest.idle_never", name=r.name)
            for r in digest.idle_reps
        ],
        days=idle_days,
    )
    lines += _section(
        turn,
        "digest.coaching",
        [
            turn.text(
                "digest.coaching_line",
                deal=_deal(turn, d),
                flag=turn.local(f.text),
                question=turn.local(f.coaching),
            )
            for d, f in digest.coaching
        ],
    )
    return lines


def _pipeline(turn: Turn, digest: Digest) -> list[str]:
    lines = [turn.text("digest.pipeline")]
    for line in digest.pipeline:
        if line.count:
            lines.append(
                turn.text(
                    "digest.pipeline_line",
                    stage=render.stage_name(turn, line.stage_id),
                    count=line.count,
                    amount=turn.money(line.amount_minor),
                    weighted=turn.money(line.weighted_minor),
                )
            )
    total = digest.total
    lines.append(
        turn.text(
            "digest.pipeline_total",
            count=total.count,
            amount=turn.money(total.amount_minor),
            weighted=turn.money(total.weighted_minor),
        )
    )
    return lines


def _changes(turn: Turn, digest: Digest) -> list[str]:
    items = [turn.text("digest.new_line", deal=_deal(turn, d)) for d in digest.new_deals]
    items += [
        turn.text(
            "digest.move_line",
            deal=_deal(turn, d),
            from_stage=render.stage_name(turn, m.from_stage) if m.from_stage else "",
            to_stage=render.stage_name(turn, m.to_stage),
        )
        for d, m in digest.moves
    ]
    items += [
        turn.text("digest.won_line", deal=_deal(turn, d), amount=turn.money(d.amount_minor))
        for d, _ in digest.wins
    ]
    items += [
        turn.text("digest.lost_line", deal=_deal(turn, d), reason=m.reason or "")
        for d, m in digest.losses
    ]
    return _section(turn, "digest.changes", items) or [turn.text("digest.no_changes")]


def _section(turn: Turn, title_key: str, items: list[str], **params) -> list[str]:
    if not items:
        return []
    shown = items[:SECTION_LIMIT]
    more = len(items) - len(shown)
    tail = [turn.text("digest.more", count=more)] if more else []
    return ["", turn.text(title_key, count=len(items), **params), *shown, *tail]


def _deal(turn: Turn, deal: DealSnapshot) -> str:
    return turn.text(
        "digest.deal",
        number=deal.number,
        name=deal.name,
        customer=deal.customer,
        rep=deal.owner_name,
    )
