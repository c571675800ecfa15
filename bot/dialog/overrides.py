"""Past blocking gaps: a manager forces a move with a reason; a rep asks the managers first."""

from __future__ import annotations

from bot.dialog import render
from bot.dialog.access import MANAGING_ROLES, deal_for, moved_deal
from bot.dialog.buttons import AskException, DecideRequest, ForceMove
from bot.dialog.events import Button
from bot.dialog.moves import kind_of_move, move_deal
from bot.dialog.state import EXCEPTION_REASON, OVERRIDE_REASON
from bot.dialog.turn import ButtonRoutes, Turn
from flows import engine
from storage.models import Deal
from storage.requests import create_advance_request, decide_advance_request, get_advance_request
from storage.teams import get_member, list_members

MAX_REASON = 500


def blocked_buttons(turn: Turn, deal: Deal, from_index: int, to_index: int) -> list[Button]:
    """Under a blocked advance: force (managers) or ask for an exception (reps)."""
    move = (deal.id, from_index, to_index)
    if turn.member.role in MANAGING_ROLES:
        return [Button(turn.label("override.button_force"), ForceMove(*move).encode())]
    return [Button(turn.label("override.button_ask"), AskException(*move).encode())]


def start_reason(turn: Turn, deal: Deal, mode: str, from_index: int, to_index: int) -> None:
    """Ask why the deal should move despite its gaps."""
    if turn.playbook.stage_index(deal.stage_id) != from_index or deal.status == "lost":
        turn.response.notice = turn.text("dialog.old_button")
        return
    turn.state.reset()
    turn.state.mode, turn.state.deal_id = mode, deal.id
    turn.state.draft = {"from": from_index, "to": to_index}
    key = "override.ask_force_reason" if mode == OVERRIDE_REASON else "override.ask_exception"
    turn.say(
        turn.text(
            key,
            deal=render.deal_title(turn, deal),
            stage=render.stage_name(turn, turn.playbook.stages[to_index].id),
        ),
        expects_text=True,
    )


def reason_text(turn: Turn, text: str) -> None:
    """The reason for a forced move or an exception request."""
    reason = turn.short_text(text, MAX_REASON)
    if reason is None:
        return
    state = turn.state
    mode, from_index, to_index = state.mode, state.draft.get("from"), state.draft.get("to")
    deal = turn.deals.load(state.deal_id)
    state.reset()
    if deal is None or turn.playbook.stage_index(deal.stage_id) != from_index:
        return turn.say(turn.text("dialog.old_button"))
    if mode == OVERRIDE_REASON and turn.member.role in MANAGING_ROLES:
        return _force(turn, deal, from_index, to_index, reason)
    if mode == EXCEPTION_REASON:
        return _ask_managers(turn, deal, from_index, to_index, reason)


def _force(turn: Turn, deal: Deal, from_index: int, to_index: int, reason: str) -> None:
    to_stage = turn.playbook.stages[to_index].id
    move_deal(
        turn, deal, to_stage, kind_of_move(turn, from_index, to_index), reason=reason, override=True
    )
    turn.say(
        turn.text(
            "override.forced",
            deal=render.deal_title(turn, deal),
            stage=render.stage_name(turn, to_stage),
            reason=reason,
        )
    )


def _ask_managers(turn: Turn, deal: Deal, from_index: int, to_index: int, reason: str) -> None:
    to_stage = turn.playbook.stages[to_index].id
    managers = [
        m
        for m in list_members(turn.session, team_id=turn.member.team_id)
        if m.role in MANAGING_ROLES and m.active and m.id != turn.member.id
    ]
    if not managers:
        return turn.say(turn.text("override.no_managers"))
    request = create_advance_request(
        turn.session,
        deal_id=deal.id,
        requested_by=turn.member.id,
        from_stage=deal.stage_id,
        to_stage=to_stage,
        reason=reason,
        now=turn.now,
    )
    answers = turn.deals.answers(deal)
    check = engine.check_advance(turn.playbook, deal.stage_id, to_stage, answers)
    for manager in managers:
        speaker = turn.in_language(manager.language)
        text = render.join(
            [
                speaker.text(
                    "override.request",
                    rep=turn.member.display_name,
                    deal=render.deal_title(speaker, deal),
                    from_stage=render.stage_name(speaker, deal.stage_id),
                    to_stage=render.stage_name(speaker, to_stage),
                    reason=reason,
                ),
                *[line for r in check.blockers for line in render.gap_lines(speaker, r)],
            ]
        )
        buttons = [
            [
                Button(
                    speaker.label("override.button_approve"),
                    DecideRequest(request.id, True).encode(),
                ),
                Button(
                    speaker.label("override.button_reject"),
                    DecideRequest(request.id, False).encode(),
                ),
            ]
        ]
        speaker.say(text, buttons, chat_id=manager.telegram_user_id)
    turn.say(turn.text("override.request_sent", deal=render.deal_title(turn, deal)))


def decide(turn: Turn, request_id: int, approve: bool) -> bool:
    """A manager's Approve / Reject press; False when it is not theirs to decide."""
    request = get_advance_request(turn.session, request_id=request_id)
    if request is None or turn.member.role not in MANAGING_ROLES:
        return False
    deal = deal_for(turn.deals, turn.member, request.deal_id)
    if deal is None:
        return False
    decided = decide_advance_request(
        turn.session, request_id=request_id, approve=approve, member_id=turn.member.id, now=turn.now
    )
    if decided is None:
        turn.response.notice = turn.text("override.already_decided")
        return True
    moved = approve and deal.stage_id == request.from_stage and deal.status != "lost"
    if moved:
        from_index = turn.playbook.stage_index(request.from_stage)
        to_index = turn.playbook.stage_index(request.to_stage)
        move_deal(
            turn,
            deal,
            request.to_stage,
            kind_of_move(turn, from_index, to_index),
            reason=request.reason,
            override=True,
        )
    outcome = "approved" if moved else "rejected" if not approve else "outdated"
    turn.edit(turn.text(f"override.you_{outcome}", deal=render.deal_title(turn, deal)))
    _tell_rep(turn, deal, request.requested_by, request.to_stage, outcome)
    return True


def _tell_rep(turn: Turn, deal: Deal, rep_id: int, to_stage: str, outcome: str) -> None:
    rep = get_member(turn.session, member_id=rep_id)
    if rep is None:
        return
    speaker = turn.in_language(rep.language)
    speaker.say(
        speaker.text(
            f"override.rep_{outcome}",
            deal=render.deal_title(speaker, deal),
            stage=render.stage_name(speaker, to_stage),
            manager=turn.member.display_name,
        ),
        chat_id=rep.telegram_user_id,
    )


# -- routes ---------------------------------------------------------------------------------


def _reason_button(mode: str):
    def handler(turn: Turn, pressed: ForceMove | AskException) -> bool:
        deal = moved_deal(turn, pressed)
        if deal is None or (mode == OVERRIDE_REASON and turn.member.role not in MANAGING_ROLES):
            return False
        start_reason(turn, deal, mode, pressed.from_index, pressed.to_index)
        return True

    return handler


def _decision_button(turn: Turn, pressed: DecideRequest) -> bool:
    return decide(turn, pressed.request_id, pressed.approve)


BUTTONS: ButtonRoutes = {
    ForceMove: _reason_button(OVERRIDE_REASON),
    AskException: _reason_button(EXCEPTION_REASON),
    DecideRequest: _decision_button,
}
