"""Deal commands: open, list, update, edit, show gaps, advance and mark lost."""

from __future__ import annotations

from bot.dialog import notes, overrides, questions, render
from bot.dialog.access import deal_for, find_deal, moved_deal, refused_as_lost, visible_deals
from bot.dialog.buttons import ConfirmMove, EditField, PickDeal
from bot.dialog.events import Button
from bot.dialog.moves import kind_of_move, move_deal
from bot.dialog.state import EDIT, LOST_REASON, NEW_CUSTOMER, NEW_NAME, QUALIFY, UPDATE
from bot.dialog.turn import ButtonRoutes, CommandRoutes, DealVerbs, Turn, is_number
from flows import engine
from storage.deals import create_deal
from storage.models import Deal
from storage.teams import get_member

STAGE_MARK = "@"  # EditField key "@<stage index>": never part of a field id
MAX_NAME = 120
MAX_REASON = 500
DEAL_BUTTONS = 10


# -- opening a deal --------------------------------------------------------------------------


def new_command(turn: Turn, args: str) -> None:
    """``/new``, or ``/new 国网江苏电力 技能培训考试系统 大概120万``: the customer, the deal's
    name, then anything more, read as a note on the new deal."""
    turn.state.reset()
    customer, _, rest = args.partition(" ")
    name, _, facts = rest.strip().partition(" ")
    if customer and name:
        if turn.short_text(customer, MAX_NAME) and turn.short_text(name, MAX_NAME):
            return _open_deal(turn, customer, name, facts.strip() or None)
        return
    turn.state.mode = NEW_CUSTOMER
    if customer and turn.short_text(customer, MAX_NAME):
        turn.state.mode, turn.state.draft = NEW_NAME, {"customer": customer}
        turn.say(turn.text("dialog.ask_deal_name", customer=customer), expects_text=True)
        return
    turn.say(turn.text("dialog.ask_customer"), expects_text=True)


def new_deal_text(turn: Turn, text: str) -> None:
    """The customer's name, then the deal's name; then the target-group questions."""
    value = turn.short_text(text, MAX_NAME)
    if value is None:
        return
    state = turn.state
    if state.mode == NEW_CUSTOMER:
        # A note may wait in the draft (a note whose deal is new): it stays there.
        state.mode, state.draft = NEW_NAME, {**state.draft, "customer": value}
        turn.say(turn.text("dialog.ask_deal_name", customer=value), expects_text=True)
        return
    _open_deal(turn, state.draft["customer"], value, state.draft.get("note"))


def _open_deal(turn: Turn, customer: str, name: str, note: str | None) -> None:
    deal = create_deal(
        turn.session,
        team_id=turn.member.team_id,
        owner_id=turn.member.id,
        name=name,
        customer=customer,
        stage_id=_opening_stage(turn),
        currency=turn.playbook.currency,
        now=turn.now,
    )
    turn.say(turn.text("dialog.deal_created", deal=render.deal_title(turn, deal)))
    notes.after_new_deal(turn, deal, note)


def _opening_stage(turn: Turn) -> str:
    stage = turn.playbook.qualifying_stage or turn.playbook.first_open_stage
    return stage.id


# -- choosing a deal -------------------------------------------------------------------------


def with_deal(turn: Turn, args: str, verb: str) -> Deal | None:
    """The deal a command names, or None after showing a picker or an error."""
    ref = args.split()[0] if args.split() else ""
    if not ref:
        return _implied_deal(turn) or show_picker(turn, verb)
    deal, matches = find_deal(turn.session, turn.member, ref)
    if deal is None:
        if matches:
            show_picker(turn, verb, matches)
        else:
            turn.say(turn.text("dialog.deal_not_found", ref=ref))
            show_picker(turn, verb)
    return deal


def _implied_deal(turn: Turn) -> Deal | None:
    """Without a named deal: the one being worked on, or the member's only deal."""
    current = questions.state_deal(turn)
    if current is not None:
        return current
    deals = visible_deals(turn.session, turn.member)
    return deals[0] if len(deals) == 1 else None


def show_picker(turn: Turn, verb: str, deals: list[Deal] | None = None) -> None:
    deals = deals if deals is not None else visible_deals(turn.session, turn.member)
    if not deals:
        turn.say(turn.text("dialog.no_deals"))
        return
    buttons = [
        [Button(f"#{d.number} {d.name} · {d.customer}", PickDeal(verb, d.id).encode())]
        for d in deals[:DEAL_BUTTONS]
    ]
    turn.say(turn.text(f"dialog.pick_deal_{verb}"), buttons)


def deals_command(turn: Turn, args: str) -> None:
    """The member's deals (a manager's: the team's, grouped by rep), most recent first."""
    deals = visible_deals(turn.session, turn.member)
    if not deals:
        turn.say(turn.text("dialog.no_deals"))
        return
    lines = [turn.text("dialog.deals_title", count=len(deals))]
    owners = _owner_names(turn, deals)
    for owner_id, name in owners.items():
        if len(owners) > 1 or owner_id != turn.member.id:
            lines.append(turn.text("dialog.deals_of", name=name))
        for deal in (d for d in deals if d.owner_id == owner_id):
            lines.append(render.deal_line(turn, deal, readiness=True))
    turn.say("\n".join(lines))
    show_picker(turn, "u", deals)
    questions.resume(turn)


def _owner_names(turn: Turn, deals: list[Deal]) -> dict[int, str]:
    names: dict[int, str] = {}
    for deal in deals:
        if deal.owner_id not in names:
            owner = get_member(turn.session, member_id=deal.owner_id)
            names[deal.owner_id] = owner.display_name if owner else "?"
    return names


# -- the verbs -------------------------------------------------------------------------------


def update_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "u")
    if deal is not None:
        words = args.partition(" ")[2].strip()
        run_update(turn, deal, key=words or None)


def run_update(turn: Turn, deal: Deal, key: str | None = None) -> None:
    if refused_as_lost(turn, deal):
        return
    if key is not None:
        return edit_field(turn, deal, key)
    stage = turn.playbook.stage(deal.stage_id)
    questions.start_run(turn, deal, QUALIFY if stage.qualifying else UPDATE)


def edit_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "e")
    if deal is not None:
        show_fields(turn, deal)


def show_fields(turn: Turn, deal: Deal, stage_index: int | None = None) -> None:
    """A stage's questions as buttons, to change one answer; other reached stages below."""
    if refused_as_lost(turn, deal):
        return
    answers = turn.deals.answers(deal)
    current = turn.playbook.stage_index(deal.stage_id)
    shown = current if stage_index is None else min(stage_index, current)
    stage = turn.playbook.stages[shown]
    buttons = []
    for q in engine.questions_of(stage, answers):
        done = engine.is_checked(answers, q.key) if q.item else engine.is_answered(answers, q.key)
        label = render.plain(q.item.text if q.item else q.spec.question, turn.lang)
        mark = "✅" if done else "⬜"
        buttons.append([Button(f"{mark} {label}", EditField(deal.id, q.key).encode())])
    others = [
        Button(
            f"{n + 1}. {render.plain(s.name, turn.lang)}",
            EditField(deal.id, f"{STAGE_MARK}{n}").encode(),
        )
        for n, s in enumerate(turn.playbook.stages[: current + 1])
        if n != shown
    ]
    buttons += [others[i : i + 2] for i in range(0, len(others), 2)]
    text = turn.text(
        "dialog.pick_field",
        deal=render.deal_title(turn, deal),
        stage=render.stage_name(turn, stage.id),
    )
    turn.say(text, buttons)


def edit_field(turn: Turn, deal: Deal, key: str) -> None:
    if refused_as_lost(turn, deal):
        return
    if key.startswith(STAGE_MARK) and is_number(key[1:]):
        return show_fields(turn, deal, int(key[1:]))
    try:
        engine.question_for(turn.playbook, key)
    except KeyError:
        return _field_by_words(turn, deal, key)
    questions.start_run(turn, deal, EDIT, key=key)


def _field_by_words(turn: Turn, deal: Deal, words: str) -> None:
    """``/update 1 预算``: the field of a stage reached that the words name (an id, a cue or
    words of its question); several: a button each, rather than a guess."""
    playbook = turn.playbook
    reached = playbook.stage_index(deal.stage_id)
    named = [
        spec
        for spec in playbook.fields_named(words)
        if playbook.stage_index(playbook.stage_of(spec.id).id) <= reached
    ]
    if len(named) == 1:
        return questions.start_run(turn, deal, EDIT, key=named[0].id)
    if not named:
        turn.say(turn.text("dialog.field_not_found", field=words))
        return show_fields(turn, deal)
    buttons = [
        [Button(render.plain(spec.question, turn.lang), EditField(deal.id, spec.id).encode())]
        for spec in named[:DEAL_BUTTONS]
    ]
    turn.say(turn.text("dialog.pick_named_field", words=words), buttons)


def gaps_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "g")
    if deal is not None:
        show_gaps(turn, deal)
        questions.resume(turn)


def show_gaps(turn: Turn, deal: Deal) -> None:
    buttons = [[_update_button(turn, deal)]] if deal.status != "lost" else []
    turn.say(render.gaps(turn, deal), buttons)


def _update_button(turn: Turn, deal: Deal) -> Button:
    return Button(turn.label("dialog.button_update"), PickDeal("u", deal.id).encode())


def advance_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "a")
    if deal is None:
        return
    parts = args.split()
    target = parts[1] if len(parts) > 1 else None
    propose_advance(turn, deal, target)


def propose_advance(turn: Turn, deal: Deal, target: str | None = None) -> None:
    """Show what blocks the next (or named) stage, or a button to move there."""
    playbook = turn.playbook
    if refused_as_lost(turn, deal):
        return
    to_stage = _target_stage(turn, deal, target)
    if to_stage is None:
        return
    answers = turn.deals.answers(deal)
    check = engine.check_advance(playbook, deal.stage_id, to_stage, answers)
    if check.direction == "same":
        return turn.say(turn.text("dialog.already_there", stage=render.stage_name(turn, to_stage)))
    from_index, to_index = playbook.stage_index(deal.stage_id), playbook.stage_index(to_stage)
    if not check.allowed:
        buttons = [
            [_update_button(turn, deal)],
            overrides.blocked_buttons(turn, deal, from_index, to_index),
        ]
        return turn.say(render.advance_blocked(turn, deal, check), buttons)
    data = ConfirmMove(deal.id, from_index, to_index).encode()
    key = "dialog.confirm_back" if check.direction == "back" else "dialog.confirm_advance"
    label = turn.label(
        "dialog.button_move", stage=render.plain(turn.playbook.stage(to_stage).name, turn.lang)
    )
    turn.say(
        turn.text(key, deal=render.deal_title(turn, deal), stage=render.stage_name(turn, to_stage)),
        [[Button(label, data)]],
    )


def _target_stage(turn: Turn, deal: Deal, target: str | None) -> str | None:
    playbook = turn.playbook
    if target is None:
        following = engine.next_stage(playbook, deal.stage_id)
        if following is None:
            turn.say(turn.text("dialog.last_stage", deal=render.deal_title(turn, deal)))
        return following.id if following else None
    ids = [s.id for s in playbook.stages]
    if is_number(target) and 1 <= int(target) <= len(ids):
        return ids[int(target) - 1]
    if target in ids:
        return target
    names = ", ".join(
        f"{n} {render.plain(s.name, turn.lang)}" for n, s in enumerate(playbook.stages, 1)
    )
    turn.say(turn.text("dialog.stage_not_found", stage=target, stages=names))
    return None


def confirm_advance(turn: Turn, deal: Deal, from_index: int, to_index: int) -> None:
    """The move button: apply it if the deal is still where the button was made."""
    playbook = turn.playbook
    if playbook.stage_index(deal.stage_id) != from_index or deal.status == "lost":
        turn.response.notice = turn.text("dialog.old_button")
        return
    to_stage = playbook.stages[to_index].id
    answers = turn.deals.answers(deal)
    check = engine.check_advance(playbook, deal.stage_id, to_stage, answers)
    if not check.allowed:
        return propose_advance(turn, deal, to_stage)
    kind = kind_of_move(turn, from_index, to_index)
    turn.state.reset()  # an open question of the old stage no longer applies
    move_deal(turn, deal, to_stage, kind)
    key = "dialog.won" if kind == "won" else "dialog.moved"
    text = turn.text(
        key, deal=render.deal_title(turn, deal), stage=render.stage_name(turn, to_stage)
    )
    # The confirmation becomes the outcome, once: a second message would only repeat it.
    turn.edit(text, [[_update_button(turn, deal)]])


# -- lost ------------------------------------------------------------------------------------


def lost_command(turn: Turn, args: str) -> None:
    deal = with_deal(turn, args, "l")
    if deal is not None:
        ask_lost_reason(turn, deal)


def ask_lost_reason(turn: Turn, deal: Deal) -> None:
    if refused_as_lost(turn, deal):
        return
    turn.state.reset()
    turn.state.mode, turn.state.deal_id = LOST_REASON, deal.id
    turn.say(
        turn.text("dialog.ask_lost_reason", deal=render.deal_title(turn, deal)), expects_text=True
    )


def lost_reason_text(turn: Turn, text: str) -> None:
    reason = turn.short_text(text, MAX_REASON)
    if reason is None:
        return
    deal = turn.deals.load(turn.state.deal_id)
    turn.state.reset()
    if deal is None or deal.status == "lost":
        return
    move_deal(turn, deal, deal.stage_id, "lost", reason=reason)
    turn.say(turn.text("dialog.marked_lost", deal=render.deal_title(turn, deal), reason=reason))


# -- routes ---------------------------------------------------------------------------------


def _advance_button(turn: Turn, pressed: ConfirmMove) -> bool:
    deal = moved_deal(turn, pressed)
    if deal is not None:
        confirm_advance(turn, deal, pressed.from_index, pressed.to_index)
    return deal is not None


def _edit_button(turn: Turn, pressed: EditField) -> bool:
    deal = deal_for(turn.deals, turn.member, pressed.deal_id)
    if deal is None:
        return False
    edit_field(turn, deal, pressed.key)
    return True


COMMANDS: CommandRoutes = {
    "new": new_command,
    "deals": deals_command,
    "update": update_command,
    "edit": edit_command,
    "gaps": gaps_command,
    "advance": advance_command,
    "lost": lost_command,
}
BUTTONS: ButtonRoutes = {ConfirmMove: _advance_button, EditField: _edit_button}
DEAL_VERBS: DealVerbs = {
    "u": run_update,
    "g": show_gaps,
    "a": propose_advance,
    "l": ask_lost_reason,
    "e": show_fields,
}
