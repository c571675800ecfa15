"""The nudge tick: claim due nudges, sort them by the policy (flows/nudging.py), batch per rep.

Transport-neutral: ``due`` returns the messages to send and ``delivered`` records the outcome;
the scheduler (bot/tg/scheduler.py) sends them in between. The database rows are the truth, so
a restart loses nothing and overdue nudges after downtime go out once.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from bot.dialog import render
from bot.dialog.buttons import AnswerNudge, PickDeal
from bot.dialog.events import Button, Outcome, Reply
from bot.dialog.nudges import MUTE
from bot.dialog.turn import member_now
from bot.dialog.writer import DialogConfig, Html, Writer
from flows import engine as flow
from flows.nudging import decide, reminded_date, reminder_key, reminder_policy, still_wanted
from flows.periods import show_period
from flows.playbook import Playbook
from flows.schedule import reminder_times, start_of_day
from storage.db import defer_commit_flush, transaction
from storage.deals import set_deal_attributes
from storage.models import Deal, Member, Nudge
from storage.nudges import (
    answers_by_deal,
    claim_due_nudges,
    count_sent_since_each,
    deals_by_id,
    finish_nudges,
    members_by_id,
    postpone_nudges,
    record_sent,
    schedule_nudge,
    stale_deals,
)
from storage.updates import forget_old_updates

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE = timedelta(minutes=5)
STALE_PAGE = 100  # stale deals planned per transaction (see plan_stale)
# Between pages: longer than SQLite's busy handler sleeps between tries (up to 100 ms), or a
# waiting chat turn or digest would find the next page's lock taken every time it looks.
STALE_PAUSE_SECONDS = 0.15
FOLLOW_UP_KINDS = ("resume", "date")  # sent nudges that change something once delivered


@dataclass
class Batch:
    """One message to one rep, carrying several nudges."""

    chat_id: int
    reply: Reply
    nudge_ids: list[int] = field(default_factory=list)
    # The sent nudges of FOLLOW_UP_KINDS, so delivered() needs to load nothing for the others.
    follow_ups: list[Nudge] = field(default_factory=list)


@dataclass
class _Loaded:
    """What the claimed nudges refer to, loaded for all reps at once (a few IN queries)."""

    members: dict[int, Member]
    deals: dict[int, Deal]
    answers: dict[int, dict[str, Any]]
    sent_today: dict[int, int]  # by member, counted from their local midnight


@dataclass
class _Plan:
    """What becomes of one rep's claimed nudges: a message, rows dropped, rows due later."""

    batch: Batch | None = None
    dropped: list[int] = field(default_factory=list)
    later: dict[datetime, list[int]] = field(default_factory=dict)  # ids by due time


class NudgeRunner:
    def __init__(self, engine: Engine, playbook: Playbook, config: DialogConfig, instance: str):
        self.engine = engine
        self.playbook = playbook
        self.config = config
        self.instance = instance
        self.stopping = threading.Event()  # set when the bot stops: plan_stale ends early

    def plan_stale(self, now: datetime) -> int:
        """Create a nudge for every deal that went stale (run now and then, not every tick).

        A page of STALE_PAGE deals per transaction, with a pause in between: after a long
        downtime (or on a first start over imported deals) thousands can be stale, and one
        transaction for all of them would hold SQLite's write lock so long that chat turns and
        the digest tick waiting for it give up with "database is locked".

        Also forgets Telegram update ids too old to be redelivered (housekeeping that needs
        the same slow rhythm). Returns how many deals were stale.
        """
        days = {s.id: s.stale_after_days for s in self.playbook.stages}
        with transaction(self.engine) as session:
            forget_old_updates(session, now=now)
        found, after_id = 0, 0
        while True:
            with transaction(self.engine) as session:
                deals = stale_deals(
                    session,
                    now=now,
                    today=now.date(),
                    stale_days=days,
                    after_id=after_id,
                    limit=STALE_PAGE,
                )
                for deal in deals:
                    schedule_nudge(
                        session,
                        member_id=deal.owner_id,
                        deal_id=deal.id,
                        kind="stale",
                        due_at=now,
                        now=now,
                    )
            found += len(deals)
            if len(deals) < STALE_PAGE:
                return found
            after_id = deals[-1].id
            if self.stopping.wait(STALE_PAUSE_SECONDS):
                return found  # the rest is planned at the next start, nothing is lost

    def due(self, now: datetime) -> list[Batch]:
        """Claim the due nudges and turn them into one message per rep (or postpone them).

        One transaction and a few queries for all reps: the claim, the rows the nudges refer
        to, then every rep's drops and postponements together (the cost of a tick must not
        grow with a query per nudge).
        """
        with transaction(self.engine) as session:
            claimed = claim_due_nudges(session, now=now, instance=self.instance)
            if not claimed:
                return []
            by_member: dict[int, list[Nudge]] = defaultdict(list)
            for nudge in claimed:
                by_member[nudge.member_id].append(nudge)
            plans = self._plans(session, by_member, now)
            self._record(session, plans)
        return [plan.batch for plan in plans if plan.batch is not None]

    def delivered(self, batch: Batch, outcome: Outcome, now: datetime) -> None:
        """Record a batch as sent, drop it (the rep blocked the bot), or retry it later."""
        if outcome.reached and not batch.follow_ups:
            # The common case, right after each batch sent: one statement that commits.
            record_sent(self.engine, ids=batch.nudge_ids, instance=self.instance, now=now)
            return
        with transaction(self.engine) as session:
            # One commit per batch sent: waiting for the disk each time would dominate the tick,
            # and a record lost in a database crash only means the batch goes again.
            defer_commit_flush(session.connection())
            if outcome in (Outcome.BLOCKED, Outcome.REFUSED):  # it would never go
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
            if batch.follow_ups:
                self._after_sent(session, batch.follow_ups, now)

    # -- all reps' nudges ---------------------------------------------------------------------

    def _plans(
        self, session: Session, by_member: dict[int, list[Nudge]], now: datetime
    ) -> list[_Plan]:
        """Every rep's plan, from the rows loaded for all of them at once."""
        loaded = self._load_apart(session, by_member, now)
        if loaded is not None:
            return [self._isolated_plan(loaded, ns, now) for ns in by_member.values()]
        if len(by_member) == 1:  # this rep's rows cannot be read: hold back only theirs
            [nudges] = by_member.values()
            return [self._retry_later(nudges, now)]
        # Some row cannot be read: find whose, rep by rep, so everyone else's still go.
        return [plan for m, ns in by_member.items() for plan in self._plans(session, {m: ns}, now)]

    def _load_apart(
        self, session: Session, by_member: dict[int, list[Nudge]], now: datetime
    ) -> _Loaded | None:
        """The rows, or None (logged) if one cannot be read; the transaction goes on either way."""
        try:
            with session.begin_nested():
                return self._load(session, by_member, now)
        except Exception:
            log.exception("could not load the nudges of members %s", sorted(by_member))
            return None

    def _load(self, session: Session, by_member: dict[int, list[Nudge]], now: datetime) -> _Loaded:
        members = members_by_id(session, ids=by_member)
        deals = deals_by_id(session, ids={n.deal_id for ns in by_member.values() for n in ns})
        midnights = {m.id: start_of_day(member_now(now, m)) for m in members.values() if m.active}
        return _Loaded(
            members=members,
            deals=deals,
            answers=answers_by_deal(session, deal_ids=deals),
            sent_today=count_sent_since_each(session, since=midnights),
        )

    def _isolated_plan(self, loaded: _Loaded, nudges: list[Nudge], now: datetime) -> _Plan:
        """One rep's plan (no SQL): one bad row must not stop everyone's nudges."""
        try:
            return self._plan_for(loaded, nudges, now)
        except Exception:
            log.exception("could not prepare the nudges of member %s", nudges[0].member_id)
            return self._retry_later(nudges, now)

    def _retry_later(self, nudges: list[Nudge], now: datetime) -> _Plan:
        plan = _Plan()
        plan.later[now + RETRY_AFTER_FAILURE * 12] = [n.id for n in nudges]
        return plan

    def _record(self, session: Session, plans: list[_Plan]) -> None:
        """Every rep's drops in one statement, postponements in one per due time."""
        dropped = [i for plan in plans for i in plan.dropped]
        finish_nudges(session, ids=dropped, state="dropped", instance=self.instance)
        later: dict[datetime, list[int]] = defaultdict(list)
        for plan in plans:
            for due_at, ids in plan.later.items():
                later[due_at] += ids
        for due_at, ids in later.items():
            postpone_nudges(session, ids=ids, due_at=due_at, instance=self.instance)

    # -- one rep's nudges ---------------------------------------------------------------------

    def _plan_for(self, loaded: _Loaded, nudges: list[Nudge], now: datetime) -> _Plan:
        plan = _Plan()
        member = loaded.members.get(nudges[0].member_id)
        if member is None or not member.active:
            plan.dropped = [n.id for n in nudges]
            return plan
        local = member_now(now, member)

        def wanted(nudge: Nudge) -> bool:
            return still_wanted(
                self.playbook,
                kind=nudge.kind,
                key=nudge.key,
                deal=loaded.deals.get(nudge.deal_id),
                answers=loaded.answers.get(nudge.deal_id, {}),
                local=local,
            )

        decision = decide(
            nudges,
            local=local,
            policy=self.config.nudges,
            sent_today=loaded.sent_today[member.id],
            wanted=wanted,
        )
        plan.dropped = [n.id for n in decision.drop]
        plan.later = {due: [n.id for n in held] for due, held in decision.later.items()}
        if decision.send:
            sending = [(n, loaded.deals[n.deal_id]) for n in decision.send]
            writer = Writer(member.language, self.playbook, local, self.config)
            plan.batch = Batch(
                member.telegram_user_id,
                self._message(writer, loaded.answers, sending),
                [n.id for n in decision.send],
                [n for n in decision.send if n.kind in FOLLOW_UP_KINDS],
            )
        return plan

    # -- after sending ------------------------------------------------------------------------

    def _after_sent(self, session: Session, nudges: list[Nudge], now: datetime) -> None:
        """A resume nudge ends the pause; a date reminder plans the next one before the date."""
        deals = deals_by_id(session, ids={n.deal_id for n in nudges})
        members = members_by_id(session, ids={n.member_id for n in nudges})
        dated = [n.deal_id for n in nudges if n.kind == "date"]
        answers = answers_by_deal(session, deal_ids=dated) if dated else {}
        for nudge in nudges:
            deal, member = deals.get(nudge.deal_id), members.get(nudge.member_id)
            if deal is None or member is None:
                continue
            if nudge.kind == "resume":
                set_deal_attributes(
                    session, deal_id=deal.id, now=now, paused_until=None, pause_reason=None
                )
            elif nudge.kind == "date":
                self._next_reminder(session, nudge, answers[deal.id], member, now)

    def _next_reminder(
        self, session: Session, nudge: Nudge, answers: dict[str, Any], member: Member, now: datetime
    ) -> None:
        due = reminded_date(self.playbook, nudge.key, answers)
        if due is None:
            return
        policy = reminder_policy(self.config.nudges, self.playbook.field(nudge.key))
        later = reminder_times(due, member_now(now, member), policy)
        if later:
            schedule_nudge(
                session,
                member_id=member.id,
                deal_id=nudge.deal_id,
                kind="date",
                key=nudge.key,
                due_at=later[0],
                now=now,
            )

    # -- the message ---------------------------------------------------------------------------

    def _message(
        self, writer: Writer, answers: dict[int, dict[str, Any]], items: list[tuple[Nudge, Deal]]
    ) -> Reply:
        lines = [writer.text("nudge.title")]
        buttons: list[list[Button]] = []
        for nudge, deal in items:
            lines.append(self._line(writer, nudge, deal, answers[deal.id]))
            n = {"number": deal.number}
            buttons.append(
                [
                    Button(
                        writer.label("nudge.button_update", **n), PickDeal("u", deal.id).encode()
                    ),
                    Button(writer.label("nudge.button_mute", **n), _nudge(nudge, MUTE)),
                ]
            )
            buttons.append(
                [
                    Button(writer.label("nudge.button_day", **n), _nudge(nudge, "1")),
                    Button(writer.label("nudge.button_week", **n), _nudge(nudge, "7")),
                ]
            )
        return Reply(render.join(lines), tuple(tuple(row) for row in buttons))

    def _open(self, writer: Writer, deal: Deal, answers: dict[str, Any]) -> str:
        """What is still open at the deal's stage: a count and the first gap."""
        report = flow.gap_report(self.playbook, deal.stage_id, answers)
        if report.closed:
            return ""
        first = render.gap_lines(writer, report)[0].lstrip("•☐ ")
        return " " + writer.text("nudge.open", count=report.open_count, first=Html(first))

    def _line(self, writer: Writer, nudge: Nudge, deal: Deal, answers: dict[str, Any]) -> str:
        title = render.deal_title(writer, deal)
        stage = render.stage_name(writer, deal.stage_id)
        if nudge.kind == "gap":
            return writer.text("nudge.gap", deal=title, stage=stage) + self._open(
                writer, deal, answers
            )
        if nudge.kind == "stale":
            days = (writer.now - deal.updated_at).days
            line = writer.text("nudge.stale", deal=title, stage=stage, days=days)
            return line + self._open(writer, deal, answers)
        if nudge.kind == "resume":
            line = writer.text("nudge.resume", deal=title, reason=deal.pause_reason or "")
            return line + self._open(writer, deal, answers)
        spec = self.playbook.field(nudge.key)
        due = reminded_date(self.playbook, nudge.key, answers)
        days = (due - writer.now.date()).days
        return writer.text(
            "nudge.date" if days > 1 else "nudge.date_soon",
            deal=title,
            question=writer.local(spec.question),
            date=show_period(reminder_key(spec, answers.get(spec.id)) or "", writer.lang),
            days=days,
        )


def _nudge(nudge: Nudge, action: str) -> str:
    return AnswerNudge(nudge.id, action).encode()
