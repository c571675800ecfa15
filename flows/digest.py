"""The data of a manager's daily digest: pipeline, changes, blocked and stale deals, idle reps
and the coaching queue. Rendering to text or a chart and sending happen elsewhere (bot/).

Pure and linear in the number of deals and moves: snapshots in, a frozen Digest out. Time zones
are the caller's job: ``since``/``now`` are aware UTC datetimes and ``today`` is the manager's
local date.

Conventions:
- Changes (new deals, moves, wins, losses) fall in the half-open window ``since <= t < now``, so
  back-to-back digests never report one change twice.
- "Open" means status "open". A paused deal (``paused_until >= today``) is listed under paused,
  never as stale or blocked; it still counts in the pipeline and still raises risk flags.
- Deals at a stage the playbook does not know are left out of every stage-based section
  (pipeline, blocked, stale, coaching); they still show as new deals, moves, wins and losses.
- Deals are listed by ``number`` (then ``deal_id``) unless a section says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

from flows.engine import GapChecker, GapReport, gap_keys
from flows.playbook import Playbook, RiskFlag
from flows.risks import EXPECTED_CLOSE, OPEN, RiskChecker

WON = "won"
LOST = "lost"
TOTAL = "total"  # stage_id of Digest.total
STAGE_MOVES = ("advance", "back")


class DealSnapshot(NamedTuple):
    """A deal as a digest reads it. Immutable, and a named tuple rather than a frozen
    dataclass: a team can have 100,000 of these, and a frozen dataclass is several times
    slower to make (each field set through ``object.__setattr__``)."""

    deal_id: int
    number: int
    name: str
    customer: str
    owner_id: int
    owner_name: str
    stage_id: str
    status: str  # open | won | lost
    amount_minor: int | None
    expected_close: date | None
    created_at: datetime  # aware, UTC
    updated_at: datetime  # aware, UTC
    paused_until: date | None
    lost_reason: str | None
    answers: Mapping[str, Any]


@dataclass(frozen=True)
class MoveSnapshot:
    deal_id: int
    from_stage: str | None
    to_stage: str
    kind: str  # open | advance | back | lost | won | reopen
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class RepSnapshot:
    member_id: int
    name: str
    last_update: datetime | None  # newest answer or stage change by them


@dataclass(frozen=True)
class StageLine:
    """Open deals of one stage. ``weighted_minor`` is ``amount_minor * win_probability / 100``
    of the stage's summed amount, rounded half up; deals without an amount count as 0."""

    stage_id: str
    count: int
    amount_minor: int
    weighted_minor: int


@dataclass(frozen=True)
class Digest:
    since: datetime
    now: datetime
    today: date
    # Open deals per stage: every stage of the playbook in order, zero rows included.
    pipeline: tuple[StageLine, ...]
    # stage_id "total": the sums of the pipeline rows (weighted = sum of the rows' weighted).
    total: StageLine
    # Created in the window, any status, oldest first.
    new_deals: tuple[DealSnapshot, ...]
    # Stage moves (advance, back) in the window, oldest first.
    moves: tuple[tuple[DealSnapshot, MoveSnapshot], ...]
    # Deals won in the window and still won: the latest "won" move of each, oldest first.
    wins: tuple[tuple[DealSnapshot, MoveSnapshot], ...]
    # Deals lost in the window and still lost: the latest "lost" move of each, oldest first;
    # the move's reason falls back to the deal's lost_reason.
    losses: tuple[tuple[DealSnapshot, MoveSnapshot], ...]
    # Open, not paused deals whose current stage has gaps: most open gaps first.
    blocked: tuple[tuple[DealSnapshot, GapReport], ...]
    # Open, not paused, no update for longer than the stage's stale_after_days: oldest first.
    stale: tuple[DealSnapshot, ...]
    # Open deals with paused_until >= today: soonest resume first.
    paused: tuple[DealSnapshot, ...]
    # No update for longer than idle_days (or never): never first, then oldest update first.
    idle_reps: tuple[RepSnapshot, ...]
    # Raised risk flags of open deals: by deal, each deal's flags in playbook order.
    coaching: tuple[tuple[DealSnapshot, RiskFlag], ...]


@dataclass(frozen=True, slots=True)
class DealFacts:
    """What a digest reads from an open deal's answers: the risk flags it raises (playbook
    order) and its current stage's gaps."""

    flags: tuple[RiskFlag, ...]
    gaps: GapReport


class FactChecker:
    """``DealFacts`` of many deals, the playbook's tests prepared once.

    A caller can work out each deal's facts while it streams the answers, and hand
    ``build_digest`` the facts instead of holding every deal's answers at once.
    """

    def __init__(self, playbook: Playbook):
        self._risks = RiskChecker(playbook)
        self._gaps = GapChecker(playbook)
        risk_keys = _risk_keys(playbook)
        # Per stage, the answers a deal's facts are read from: a caller may load only these.
        self.keys = {stage.id: gap_keys(stage) | risk_keys for stage in playbook.stages}

    def facts(
        self,
        *,
        stage_id: str,
        answers: Mapping[str, Any],
        expected_close: date | None,
        today: date,
    ) -> DealFacts:
        """The facts of an open deal at a stage the playbook has (KeyError otherwise)."""
        gaps = self._gaps.report(stage_id, answers)
        flags = self._risks.raised(
            stage_id=stage_id,
            status=OPEN,
            answers=answers,
            expected_close=expected_close,
            today=today,
        )
        return DealFacts(tuple(flags) if flags else (), gaps)


def _risk_keys(playbook: Playbook) -> frozenset[str]:
    """The answer keys any risk flag reads (a flag's own stages are not told apart: a few keys
    more to load is cheaper than a second copy of RiskChecker's stage rules)."""
    keys: set[str] = set()
    for flag in playbook.risk_flags:
        if flag.missing is not None:
            spec = playbook.field(flag.missing)
            keys |= {spec.id, *(c.field for c in spec.ask_if)}
        if flag.no_supporter is not None:
            keys.add(flag.no_supporter.field)
        if flag.past_date is not None and flag.past_date != EXPECTED_CLOSE:
            keys.add(flag.past_date)
    return frozenset(keys)


def build_digest(
    playbook: Playbook,
    *,
    deals: Sequence[DealSnapshot],
    moves: Sequence[MoveSnapshot],
    reps: Sequence[RepSnapshot],
    since: datetime,
    now: datetime,
    today: date,
    idle_days: int = 3,
    facts: Mapping[int, DealFacts] | None = None,
) -> Digest:
    """A manager's digest over the deals, moves and reps of their team.

    Args:
        playbook: the team's playbook.
        deals: the team's deals, any status.
        moves: stage moves of those deals (others are ignored); only the window's matter.
        reps: the team's reps.
        since: start of the window (the previous digest's ``now``), aware UTC.
        now: end of the window, aware UTC.
        today: the manager's local date (pauses and past dates).
        idle_days: reps without an update for longer than this are listed as idle.
        facts: open deals' facts by deal id, worked out by the caller with a ``FactChecker``
            for this ``today``; an open deal missing from it is checked with its own answers.
    """
    stages = {stage.id: stage for stage in playbook.stages}
    checker = FactChecker(playbook)
    facts = facts or {}
    by_id = {deal.deal_id: deal for deal in deals}
    stale_before = {s.id: now - timedelta(days=s.stale_after_days) for s in playbook.stages}
    ordered = sorted(deals, key=attrgetter(*_DEAL_ORDER_FIELDS))

    counts = dict.fromkeys(stages, 0)
    amounts = dict.fromkeys(stages, 0)
    blocked: list[tuple[DealSnapshot, GapReport]] = []
    stale: list[DealSnapshot] = []
    paused: list[DealSnapshot] = []
    coaching: list[tuple[DealSnapshot, RiskFlag]] = []
    for deal in ordered:
        stage = stages.get(deal.stage_id)
        if deal.status != OPEN or stage is None:
            continue
        counts[stage.id] += 1
        amounts[stage.id] += deal.amount_minor or 0
        known = facts.get(deal.deal_id) or checker.facts(
            stage_id=stage.id,
            answers=deal.answers,
            expected_close=deal.expected_close,
            today=today,
        )
        if known.flags:
            coaching += [(deal, flag) for flag in known.flags]
        if deal.paused_until is not None and deal.paused_until >= today:
            paused.append(deal)
            continue
        if deal.updated_at < stale_before[stage.id]:
            stale.append(deal)
        if not known.gaps.closed:
            blocked.append((deal, known.gaps))

    pipeline = tuple(
        StageLine(
            stage.id,
            counts[stage.id],
            amounts[stage.id],
            _weighted(amounts[stage.id], stage.win_probability),
        )
        for stage in playbook.stages
    )
    total = StageLine(
        TOTAL,
        sum(line.count for line in pipeline),
        sum(line.amount_minor for line in pipeline),
        sum(line.weighted_minor for line in pipeline),
    )

    stage_moves: list[tuple[DealSnapshot, MoveSnapshot]] = []
    closing: dict[tuple[int, str], MoveSnapshot] = {}  # (deal, "won"/"lost") -> latest move
    for move in moves:
        deal = by_id.get(move.deal_id)
        if deal is None or not since <= move.at < now:
            continue
        if move.kind in STAGE_MOVES:
            stage_moves.append((deal, move))
        elif move.kind in (WON, LOST) and deal.status == move.kind:
            key = (deal.deal_id, move.kind)
            if key not in closing or closing[key].at <= move.at:
                closing[key] = move
    wins = [(by_id[d], m) for (d, kind), m in closing.items() if kind == WON]
    losses = [
        (by_id[d], m if m.reason else replace(m, reason=by_id[d].lost_reason))
        for (d, kind), m in closing.items()
        if kind == LOST
    ]

    idle_before = now - timedelta(days=idle_days)
    idle = [rep for rep in reps if rep.last_update is None or rep.last_update < idle_before]

    return Digest(
        since=since,
        now=now,
        today=today,
        pipeline=pipeline,
        total=total,
        new_deals=tuple(
            sorted(
                (d for d in deals if since <= d.created_at < now),
                key=attrgetter("created_at", *_DEAL_ORDER_FIELDS),
            )
        ),
        moves=tuple(sorted(stage_moves, key=_by_move_time)),
        wins=tuple(sorted(wins, key=_by_move_time)),
        losses=tuple(sorted(losses, key=_by_move_time)),
        blocked=tuple(sorted(blocked, key=lambda pair: -pair[1].open_count)),  # stable
        stale=tuple(sorted(stale, key=attrgetter("updated_at", *_DEAL_ORDER_FIELDS))),
        paused=tuple(sorted(paused, key=attrgetter("paused_until", *_DEAL_ORDER_FIELDS))),
        idle_reps=tuple(sorted(idle, key=_idle_order)),
        coaching=tuple(coaching),
    )


def _weighted(amount_minor: int, win_probability: int) -> int:
    """``amount * probability / 100`` rounded half up (half away from zero), in integers."""
    sign = -1 if amount_minor < 0 else 1
    return sign * ((abs(amount_minor) * win_probability + 50) // 100)


# A deal's place in lists, as attrgetter keys: sorting calls no Python function per deal.
_DEAL_ORDER_FIELDS = ("number", "deal_id")
_deal_order = attrgetter(*_DEAL_ORDER_FIELDS)


def _by_move_time(pair: tuple[DealSnapshot, MoveSnapshot]) -> tuple[datetime, int, int]:
    return (pair[1].at, *_deal_order(pair[0]))


def _idle_order(rep: RepSnapshot) -> tuple[bool, datetime | None, str, int]:
    return (rep.last_update is not None, rep.last_update, rep.name, rep.member_id)
