"""The deals one turn works on, each loaded once with its answers and its gap report.

A turn reads a deal, its answers and its gaps many times over (the question, the summary card,
the follow-up nudge): here each is read or computed once and handed out, and the turn's own
writes keep them current. Nothing outlives the turn, so nothing can go stale across
transactions.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlmodel import Session

from flows.engine import GapReport, gap_report
from flows.playbook import Playbook
from storage.answers import get_answers, save_answer
from storage.deals import get_deal_with_answers
from storage.models import Deal


class DealView:
    """One deal as the turn knows it.

    ``answers`` are the turn's working copy, kept current by ``TurnDeals.save``: read them,
    never change them (``TurnDeals.answers`` gives a copy to change).
    """

    def __init__(self, deal: Deal, answers: dict[str, Any]):
        self.deal = deal
        self.answers = answers
        self._report: GapReport | None = None
        self._report_stage: str | None = None

    def gap_report(self, playbook: Playbook) -> GapReport:
        """The gaps at the deal's current stage, computed again only after a change."""
        if self._report is None or self._report_stage != self.deal.stage_id:
            self._report = gap_report(playbook, self.deal.stage_id, self.answers)
            self._report_stage = self.deal.stage_id
        return self._report

    def changed(self) -> None:
        self._report = None


class TurnDeals:
    """The turn's deals by id, loaded on first use."""

    def __init__(self, session: Session):
        self.session = session
        self._views: dict[int, DealView] = {}

    def load(self, deal_id: int) -> Deal | None:
        """The deal with this id, read with its answers (one round trip on PostgreSQL)."""
        view = self._views.get(deal_id)
        if view is None:
            loaded = get_deal_with_answers(self.session, deal_id=deal_id)
            if loaded is None:
                return None
            view = self._views[deal_id] = DealView(*loaded)
        return view.deal

    def view(self, deal: Deal) -> DealView:
        """The deal's view; its answers are read now if the deal came from elsewhere."""
        view = self._views.get(deal.id)
        if view is None or view.deal is not deal:
            view = self._views[deal.id] = DealView(deal, get_answers(self.session, deal_id=deal.id))
        return view

    def answers(self, deal: Deal) -> dict[str, Any]:
        """A copy of the deal's answers, the caller's to change."""
        return copy.deepcopy(self.view(deal).answers)

    def gap_report(self, deal: Deal, playbook: Playbook) -> GapReport:
        return self.view(deal).gap_report(playbook)

    def save(self, deal: Deal, key: str, value: Any, *, member_id: int, now: datetime) -> bool:
        """Save one answer (None removes it), recorded with its history; True if it changed."""
        view = self.view(deal)
        changed = save_answer(
            self.session,
            deal_id=deal.id,
            key=key,
            value=value,
            member_id=member_id,
            now=now,
            answers=view.answers,
        )
        view.changed()
        return changed
