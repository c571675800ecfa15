"""``/pause``: no stale or gap nudges for a deal until a date (say, the customer's budget
cycle); on that day the rep is asked to update it."""

from __future__ import annotations

from datetime import date

from bot.dialog import render
from bot.dialog.access import deal_for, refused_as_lost
from bot.dialog.buttons import ResumeDeal
from bot.dialog.deals import run_update, with_deal
from bot.dialog.events import Button
from bot.dialog.nudges import owner_now
from bot.dialog.state import PAUSE_REASON, PAUSE_UNTIL
from bot.dialog.turn import ButtonRoutes, CommandRoutes, DealVerbs, Turn
from flows import periods
from flows.nudging import is_paused
from flows.playbook import FieldSpec
from flows.reading import Invalid, Valid
from flows.schedule import at_local
from storage.deals import set_deal_attributes
from storage.models import Deal
from storage.nudges import drop_pending, schedule_nudge

MAX_REASON = 300
RESUME_DATE = FieldSpec(id="resume_date", type="date", question={"zh": "", "en": ""})


def pause_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "p")
    if deal is not None:
        ask_pause(turn, deal)


def ask_pause(turn: Turn, deal: Deal) -> None:
    if refused_as_lost(turn, deal):
        return
    title = render.deal_title(turn, deal)
    if is_paused(deal, turn.now.date()):
        button = Button(turn.label("pause.button_resume"), ResumeDeal(deal.id).encode())
        until = render.show_date(turn, deal.paused_until)
        text = turn.text("pause.already", deal=title, until=until, reason=deal.pause_reason or "")
        return turn.say(text, [[button]])
    turn.state.reset()
    turn.state.mode, turn.state.deal_id = PAUSE_REASON, deal.id
    turn.say(turn.text("pause.ask_reason", deal=title), expects_text=True)


def pause_text(turn: Turn, text: str) -> None:
    """The reason, then the day to resume."""
    state = turn.state
    deal = turn.deals.load(state.deal_id)
    if deal is None:
        return state.reset()
    if state.mode == PAUSE_REASON:
        reason = turn.short_text(text, MAX_REASON)
        if reason is not None:
            state.mode, state.draft = PAUSE_UNTIL, {"reason": reason}
            turn.say(turn.text("pause.ask_until"), expects_text=True)
        return
    result = turn.parse(RESUME_DATE, text)
    # A period ("下个月", "春节后") resumes where it starts.
    until = periods.starts(result.value) if isinstance(result, Valid) else None
    if until is None or until <= turn.now.date():
        error = result.message(turn.lang) if isinstance(result, Invalid) else ""
        return turn.say(turn.text("pause.bad_date", error=error), expects_text=True)
    _pause(turn, deal, state.draft["reason"], until)


def _pause(turn: Turn, deal: Deal, reason: str, until: date) -> None:
    set_deal_attributes(
        turn.session, deal_id=deal.id, now=turn.now, paused_until=until, pause_reason=reason
    )
    drop_pending(turn.session, deal_id=deal.id, kinds=("gap", "stale"))
    schedule_nudge(
        turn.session,
        member_id=deal.owner_id,
        deal_id=deal.id,
        kind="resume",
        due_at=at_local(until, turn.config.nudges.morning, owner_now(turn, deal)),
        now=turn.now,
    )
    turn.state.reset()
    turn.say(
        turn.text(
            "pause.paused",
            deal=render.deal_title(turn, deal),
            until=render.show_date(turn, until),
            reason=reason,
        )
    )


def resume_button(turn: Turn, deal: Deal) -> None:
    """Resume a paused deal now, and ask for its update."""
    set_deal_attributes(
        turn.session, deal_id=deal.id, now=turn.now, paused_until=None, pause_reason=None
    )
    drop_pending(turn.session, deal_id=deal.id, kinds=("resume",))
    turn.edit(turn.text("pause.resumed", deal=render.deal_title(turn, deal)))
    run_update(turn, deal)


# -- routes ---------------------------------------------------------------------------------


def _resume_button(turn: Turn, pressed: ResumeDeal) -> bool:
    deal = deal_for(turn.deals, turn.member, pressed.deal_id)
    if deal is None or not is_paused(deal, turn.now.date()):
        return False  # resumed already (a second tap) or never paused
    resume_button(turn, deal)
    return True


COMMANDS: CommandRoutes = {"pause": pause_command}
BUTTONS: ButtonRoutes = {ResumeDeal: _resume_button}
DEAL_VERBS: DealVerbs = {"p": ask_pause}
