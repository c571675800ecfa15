"""The nudge tick: claim due nudges, respect quiet hours and the daily cap, batch per rep.

Transport-neutral: ``due`` returns the messages to send and ``delivered`` records the outcome;
the scheduler (bot/tg/scheduler.py) sends them in between. The database rows are the truth, so
a restart loses nothing and overdue nudges after downtime go out once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from bot import render
from bot.events import Button, Outcome, Reply
from bot.nudges import CB_NUDGE, MUTE, is_paused, reminder_date, reminder_policy
from bot.state import ConversationState
from bot.turn import DialogConfig, Html, Turn, member_now
from flows import engine as flow
from flows.playbook import Playbook
from flows.schedule import at_local, is_quiet, quiet_until, reminder_times, start_of_day
from storage.answers import get_answers
from storage.db import transaction
from storage.deals import get_deal, set_deal_attributes
from storage.models import Deal, Nudge
from storage.nudges import (
    claim_due_nudges,
    count_sent_since,
    finish_nudges,
    postpone_nudges,
    schedule_nudge,
    stale_deals,
)
from storage.teams import get_member
from storage.updates import forget_old_updates

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = timedelta(minutes=5)


@dataclass
class Batch:
    """One message to one rep, carrying several nudges."""

    chat_id: int
    reply: Reply
    nudge_ids: list[int] = field(default_factory=list)


class NudgeRunner:
    def __init__(self, engine: Engine, playbook: Playbook, config: DialogConfig, instance: str):
        self.engine = engine
        self.playbook = playbook
        self.config = config
        self.instance = instance

    def plan_stale(self, now: datetime) -> int:
        """Create a nudge for every deal that went stale (run now and then, not every tick).

        Also forgets Telegram update ids too old to be redelivered (housekeeping that needs
        the same slow rhythm).
        """
        days = {s.id: s.stale_after_days for s in self.playbook.stages}
        with transaction(self.engine) as session:
            forget_old_updates(session, now=now)
            deals = stale_deals(session, now=now, today=now.date(), stale_days=days)
            for deal in deals:
                schedule_nudge(
                    session,
                    member_id=deal.owner_id,
                    deal_id=deal.id,
                    kind="stale",
                    due_at=now,
                    now=now,
                )
        return len(deals)

    def due(self, now: datetime) -> list[Batch]:
        """Claim the due nudges and turn them into one message per rep (or postpone them)."""
        with transaction(self.engine) as session:
            claimed = claim_due_nudges(session, now=now, instance=self.instance)
        if not claimed:
            return []
        by_member: dict[int, list[Nudge]] = defaultdict(list)
        for nudge in claimed:
            by_member[nudge.member_id].append(nudge)
        batches = []
        for member_id, nudges in by_member.items():
            batch = self._isolated_batch(member_id, nudges, now)
            if batch is not None:
                batches.append(batch)
        return batches

    def _isolated_batch(self, member_id: int, nudges: list[Nudge], now: datetime) -> Batch | None:
        """One rep's batch in its own transaction: one bad row must not stop everyone's."""
        try:
            with transaction(self.engine) as session:
                return self._batch_for(session, member_id, nudges, now)
        except Exception:
            log.exception("could not prepare the nudges of member %s; retrying later", member_id)
            with transaction(self.engine) as session:
                ids = [n.id for n in nudges]
                postpone_nudges(
                    session, ids=ids, due_at=now + RETRY_AFTER_FAILURE * 12, instance=self.instance
                )
            return None

    def delivered(self, batch: Batch, outcome: Outcome, now: datetime) -> None:
        """Record a batch as sent, drop it (the rep blocked the bot), or retry it later."""
        with transaction(self.engine) as session:
            if outcome is Outcome.BLOCKED:
                finish_nudges(session, ids=batch.nudge_ids, state="dropped", instance=self.instance)
                return
            if not outcome.reached:
                postpone_nudges(
                    session,
                    ids=batch.nudge_ids,
                    due_at=now + RETRY_AFTER_FAILURE,
                    instance=self.instance,
                )
                return
            finish_nudges(
                session, ids=batch.nudge_ids, state="sent", instance=self.instance, now=now
            )
            for nudge_id in batch.nudge_ids:
                self._after_sent(session, session.get(Nudge, nudge_id), now)

    # -- one rep's nudges ---------------------------------------------------------------------

    def _batch_for(
        self, session: Session, member_id: int, nudges: list[Nudge], now: datetime
    ) -> Batch | None:
        member = get_member(session, member_id=member_id)
        ids = [n.id for n in nudges]
        if member is None or not member.active:
            finish_nudges(session, ids=ids, state="dropped", instance=self.instance)
            return None
        local = member_now(now, member)
        policy = self.config.nudges
        if is_quiet(local, policy):
            postpone_nudges(
                session, ids=ids, due_at=quiet_until(local, policy), instance=self.instance
            )
            return None
        wanted = [(n, d) for n in nudges if (d := self._still_wanted(session, n, local))]
        kept = {n.id for n, _ in wanted}
        finish_nudges(
            session, ids=[i for i in ids if i not in kept], state="dropped", instance=self.instance
        )
        room = policy.daily_cap - count_sent_since(
            session, member_id=member_id, since=start_of_day(local)
        )
        sending, later = wanted[: max(room, 0)], wanted[max(room, 0) :]
        if later:
            tomorrow = at_local(local.date() + timedelta(days=1), policy.morning, local)
            postpone_nudges(
                session, ids=[n.id for n, _ in later], due_at=tomorrow, instance=self.instance
            )
        if not sending:
            return None
        turn = Turn(session, member, ConversationState(), self.playbook, local, self.config)
        return Batch(
            member.telegram_user_id, self._message(turn, sending), [n.id for n, _ in sending]
        )

    def _still_wanted(self, session: Session, nudge: Nudge, local: datetime) -> Deal | None:
        """The nudge's deal if the nudge still makes sense (a gap closed before it fired: no)."""
        deal = get_deal(session, deal_id=nudge.deal_id)
        if deal is None or deal.status != "open" or not self._knows_stage(deal):
            return None
        today = local.date()
        if nudge.kind == "resume":
            return deal
        if nudge.kind in ("gap", "stale") and is_paused(deal, today):
            return None
        if nudge.kind == "gap":
            answers = get_answers(session, deal_id=deal.id)
            return None if flow.gap_report(self.playbook, deal.stage_id, answers).closed else deal
        if nudge.kind == "stale":
            days = self.playbook.stage(deal.stage_id).stale_after_days
            return deal if deal.updated_at < local - timedelta(days=days) else None
        due = self._reminded_date(session, nudge, deal)
        return deal if due is not None and due >= today else None

    def _knows_stage(self, deal: Deal) -> bool:
        """False for a deal at a stage the team's playbook no longer has."""
        return any(stage.id == deal.stage_id for stage in self.playbook.stages)

    def _reminded_date(self, session: Session, nudge: Nudge, deal: Deal) -> date | None:
        try:
            spec = self.playbook.field(nudge.key)
        except KeyError:
            return None
        return reminder_date(spec, get_answers(session, deal_id=deal.id).get(nudge.key))

    def _after_sent(self, session: Session, nudge: Nudge, now: datetime) -> None:
        """A resume nudge ends the pause; a date reminder plans the next one before the date."""
        deal = get_deal(session, deal_id=nudge.deal_id)
        member = get_member(session, member_id=nudge.member_id)
        if deal is None or member is None:
            return
        if nudge.kind == "resume":
            set_deal_attributes(
                session, deal_id=deal.id, now=now, paused_until=None, pause_reason=None
            )
        elif nudge.kind == "date":
            due = self._reminded_date(session, nudge, deal)
            if due is None:
                return
            policy = reminder_policy(self.config.nudges, self.playbook.field(nudge.key))
            later = reminder_times(due, member_now(now, member), policy)
            if later:
                schedule_nudge(
                    session,
                    member_id=member.id,
                    deal_id=deal.id,
                    kind="date",
                    key=nudge.key,
                    due_at=later[0],
                    now=now,
                )

    # -- the message ---------------------------------------------------------------------------

    def _message(self, turn: Turn, items: list[tuple[Nudge, Deal]]) -> Reply:
        lines = [turn.text("nudge.title")]
        buttons: list[list[Button]] = []
        for nudge, deal in items:
            lines.append(self._line(turn, nudge, deal))
            n = {"number": deal.number}
            buttons.append(
                [
                    Button(turn.label("nudge.button_update", **n), f"d:u:{deal.id}"),
                    Button(turn.label("nudge.button_mute", **n), f"{CB_NUDGE}:{nudge.id}:{MUTE}"),
                ]
            )
            buttons.append(
                [
                    Button(turn.label("nudge.button_day", **n), f"{CB_NUDGE}:{nudge.id}:1"),
                    Button(turn.label("nudge.button_week", **n), f"{CB_NUDGE}:{nudge.id}:7"),
                ]
            )
        return Reply(render.join(lines), tuple(tuple(row) for row in buttons))

    def _open(self, turn: Turn, deal: Deal) -> str:
        """What is still open at the deal's stage: a count and the first gap."""
        answers = get_answers(turn.session, deal_id=deal.id)
        report = flow.gap_report(self.playbook, deal.stage_id, answers)
        if report.closed:
            return ""
        first = render.gap_lines(turn, report)[0].lstrip("•☐ ")
        return " " + turn.text("nudge.open", count=report.open_count, first=Html(first))

    def _line(self, turn: Turn, nudge: Nudge, deal: Deal) -> str:
        title = render.deal_title(turn, deal)
        stage = render.stage_name(turn, deal.stage_id)
        if nudge.kind == "gap":
            return turn.text("nudge.gap", deal=title, stage=stage) + self._open(turn, deal)
        if nudge.kind == "stale":
            days = (turn.now - deal.updated_at).days
            line = turn.text("nudge.stale", deal=title, stage=stage, days=days)
            return line + self._open(turn, deal)
        if nudge.kind == "resume":
            line = turn.text("nudge.resume", deal=title, reason=deal.pause_reason or "")
            return line + self._open(turn, deal)
        spec = self.playbook.field(nudge.key)
        due = self._reminded_date(turn.session, nudge, deal)
        days = (due - turn.now.date()).days
        return turn.text(
            "nudge.date" if days > 1 else "nudge.date_soon",
            deal=title,
            question=turn.local(spec.question),
            date=render.show_date(turn, due),
            days=days,
        )
