"""Moving a deal between stages: stored, and announced as an event for the team's group."""

from __future__ import annotations

from bot.dialog.events import StageChanged
from bot.dialog.turn import Turn
from storage.deals import change_stage
from storage.models import Deal


def move_deal(
    turn: Turn,
    deal: Deal,
    to_stage: str,
    kind: str,
    *,
    reason: str | None = None,
    override: bool = False,
) -> None:
    from_stage = deal.stage_id
    change_stage(
        turn.session,
        deal_id=deal.id,
        to_stage=to_stage,
        kind=kind,
        member_id=turn.member.id,
        now=turn.now,
        reason=reason,
        override=override,
    )
    turn.response.events.append(StageChanged(deal.id, from_stage, to_stage, kind, turn.member.id))


def kind_of_move(turn: Turn, from_index: int, to_index: int) -> str:
    if to_index < from_index:
        return "back"
    return "won" if to_index == len(turn.playbook.stages) - 1 else "advance"
