"""Who may see which deal: reps their own, managers and admins their team's."""

from __future__ import annotations

from sqlmodel import Session

from bot.dialog import render
from bot.dialog.buttons import Move
from bot.dialog.deal_view import TurnDeals
from bot.dialog.refusals import FORGED
from bot.dialog.state import IDLE, OVERRIDE_REASON
from bot.dialog.turn import Turn, is_number
from storage.deals import get_deal_by_number, list_deals
from storage.models import Deal, Member

MANAGING_ROLES = ("manager", "admin")
WORKING_STATUSES = ("open", "won")


def can_see(member: Member, deal: Deal) -> bool:
    if deal.team_id != member.team_id:
        return False
    return member.role in MANAGING_ROLES or deal.owner_id == member.id


def visible_deals(session: Session, member: Member) -> list[Deal]:
    """Open and won deals the member may work on, most recently updated first."""
    owner = None if member.role in MANAGING_ROLES else member.id
    return list_deals(session, team_id=member.team_id, owner_id=owner, statuses=WORKING_STATUSES)


def may_go_on(turn: Turn) -> bool:
    """Whether the action the member has open is still theirs to finish: checked at every step,
    not only at the start, as their role or team may have changed in between."""
    state = turn.state
    if state.mode == IDLE:
        return True  # nothing open
    if state.mode == OVERRIDE_REASON and turn.member.role not in MANAGING_ROLES:
        return False
    if state.deal_id is None:
        return True
    deal = turn.deals.load(state.deal_id)
    return deal is not None and can_see(turn.member, deal)


def deal_for(deals: TurnDeals, member: Member, deal_id: int) -> Deal | None:
    """A deal by database id (from a button), or None if it is not the member's to see."""
    deal = deals.load(deal_id)
    if deal is None or not can_see(member, deal):
        FORGED.note(member.id, f"asked for deal {deal_id}, which they may not see")
        return None
    return deal


def find_deal(session: Session, member: Member, ref: str) -> tuple[Deal | None, list[Deal]]:
    """A deal named by its number (``12``, ``#12``) or a unique part of its name or customer.

    Returns:
        The deal, or None with the candidates when the reference is ambiguous.
    """
    number = ref.removeprefix("#")
    if is_number(number):
        deal = get_deal_by_number(session, team_id=member.team_id, number=int(number))
        return (deal, []) if deal is not None and can_see(member, deal) else (None, [])
    needle = ref.casefold()
    matches = [
        d
        for d in visible_deals(session, member)
        if needle in d.name.casefold() or needle in d.customer.casefold()
    ]
    return (matches[0], []) if len(matches) == 1 else (None, matches)


def moved_deal(turn: Turn, pressed: Move) -> Deal | None:
    """The deal of a move between two stages the playbook has, if the member may see it."""
    stages = len(turn.playbook.stages)
    if pressed.from_index >= stages or pressed.to_index >= stages:
        return None
    return deal_for(turn.deals, turn.member, pressed.deal_id)


def refused_as_lost(turn: Turn, deal: Deal) -> bool:
    """A lost deal is closed: say so instead of changing it."""
    if deal.status != "lost":
        return False
    reason = deal.lost_reason or ""
    turn.say(turn.text("dialog.deal_lost", deal=render.deal_title(turn, deal), reason=reason))
    return True
