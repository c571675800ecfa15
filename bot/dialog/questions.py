"""The question run: ask the playbook's questions one at a time, check and save each answer.

One generic path serves every field of every stage; the playbook decides what is asked.
"""

from __future__ import annotations

from typing import Any

from bot.dialog import nudges, render
from bot.dialog.buttons import AnswerQuestion
from bot.dialog.events import Button
from bot.dialog.moves import move_deal
from bot.dialog.render import DONE, TOGGLE
from bot.dialog.state import (
    EDIT,
    EXCEPTION_REASON,
    LOST_REASON,
    MORE_PEOPLE,
    NEW_CUSTOMER,
    NEW_NAME,
    OVERRIDE_REASON,
    PAUSE_REASON,
    PAUSE_UNTIL,
    QUALIFY,
    QUESTION,
    UPDATE,
    ConversationState,
)
from bot.dialog.turn import ButtonRoutes, Turn
from flows import engine, periods
from flows.amounts import whole_figure
from flows.engine import Question
from flows.parsers import parse_checklist
from flows.people import read_person
from flows.playbook import FieldSpec, Playbook
from flows.reading import Invalid, Valid, says_unknown
from flows.stakeholder import PARTS, Part, parse_part
from storage.deals import set_deal_attributes
from storage.models import Deal
from storage.notes import add_note

# Modes that wait for a typed line (a name, a reason, a date); see bot/dialog/state.py.
TEXT_MODES = (
    NEW_CUSTOMER,
    NEW_NAME,
    LOST_REASON,
    OVERRIDE_REASON,
    EXCEPTION_REASON,
    PAUSE_REASON,
    PAUSE_UNTIL,
)
SKIP, BACK, CANCEL = "skip", "back", "stop"


def start_run(turn: Turn, deal: Deal, run: str, key: str | None = None) -> None:
    """Begin asking about a deal: its qualification, its gaps, or one named field."""
    turn.state.reset()
    turn.state.mode, turn.state.deal_id, turn.state.run = QUESTION, deal.id, run
    if key is not None:
        ask(turn, deal, engine.question_for(turn.playbook, key))
    else:
        ask_next(turn, deal)


def ask_next(turn: Turn, deal: Deal) -> None:
    """Ask the run's next question, or close the run with a summary."""
    state = turn.state
    if state.run == EDIT:
        return finish_run(turn, deal)
    answers = turn.deals.answers(deal)
    stage_id = deal.stage_id
    question = engine.next_question(turn.playbook, stage_id, answers, passed=state.passed)
    if question is not None:
        return ask(turn, deal, question, answers)
    if state.run == QUALIFY:
        return _open_qualified_deal(turn, deal, answers)
    finish_run(turn, deal)


def finish_run(turn: Turn, deal: Deal) -> None:
    turn.state.reset()
    nudges.plan_gap_follow_up(turn, deal)
    turn.say(render.summary_card(turn, deal))


def ask(turn: Turn, deal: Deal, question: Question, answers: dict[str, Any] | None = None) -> None:
    """Put one question to the member and remember it as the open one.

    ``answers`` are the deal's current answers when the caller has just loaded them.
    """
    state = turn.state
    state.mode, state.key, state.seq = QUESTION, question.key, state.seq + 1
    if not state.history or state.history[-1] != question.key:
        state.history.append(question.key)
    if answers is None:
        answers = turn.deals.answers(deal)
    spec = question.spec
    if spec is not None and spec.type == "stakeholder":
        people = answers.get(spec.id) or []
        state.part = MORE_PEOPLE if people else PARTS[0].id
        state.draft = {}
    elif spec is not None and spec.type == "multichoice":
        state.draft = {"selected": list(answers.get(spec.id) or [])}
    _show_question(turn, deal, question, answers)


def _show_question(turn: Turn, deal: Deal, question: Question, answers: dict[str, Any]) -> None:
    text, choices, expects_text = render.question(turn, deal, question, answers)
    turn.say(text, _with_controls(turn, choices), expects_text=expects_text, asks=True)


def _with_controls(turn: Turn, choices: list[tuple[str, str]]) -> list[list[Button]]:
    """Choice buttons two per row, then skip, back (if there is an earlier question), stop."""
    seq = turn.state.seq

    def button(label: str, payload: str) -> Button:
        return Button(label, AnswerQuestion(seq, payload).encode())

    options = [button(label, payload) for label, payload in choices]
    rows = [options[i : i + 2] for i in range(0, len(options), 2)]
    controls = [button(turn.label("dialog.button_skip"), SKIP)]
    part = _open_part(turn)
    if len(turn.state.history) > 1 or (part is not None and part != PARTS[0]):
        controls.append(button(turn.label("dialog.button_back"), BACK))
    controls.append(button(turn.label("dialog.button_cancel"), CANCEL))
    return rows + [controls]


def still_asked(state: ConversationState, playbook: Playbook) -> bool:
    """Whether the open question (if any) still exists in the playbook."""
    try:
        return state.key is None or engine.question_for(playbook, state.key) is not None
    except KeyError:
        return False


def current_question(turn: Turn) -> Question:
    return engine.question_for(turn.playbook, turn.state.key or "")


def repeat_question(turn: Turn, deal: Deal) -> None:
    """Show the open question again, as it stands (after an error or an old button)."""
    answers = turn.deals.answers(deal)
    _show_question(turn, deal, current_question(turn), answers)


# -- answers ---------------------------------------------------------------------------------


def answer_text(turn: Turn, deal: Deal, text: str) -> None:
    """A typed answer to the open question. "Not known yet" in words (``不清楚``) is the skip
    button, unless the question offers it as an option (a team's playbook may)."""
    question = current_question(turn)
    whole_question = turn.state.part is None  # not a part of a person being added
    if whole_question and says_unknown(text) and not _names_an_option(turn, question, text):
        return skip(turn, deal)
    _answer(turn, deal, question, text)


def _names_an_option(turn: Turn, question: Question, text: str) -> bool:
    spec = question.spec
    options = spec is not None and spec.type in ("choice", "multichoice")
    return options and isinstance(turn.parse(spec, text), Valid)


def _answer(turn: Turn, deal: Deal, question: Question, text: str) -> None:
    if turn.state.part is not None:
        return _stakeholder_step(turn, deal, question, text)
    if question.item is not None:
        return _accept(turn, deal, question, parse_checklist(text))
    _accept(turn, deal, question, turn.parse(question.spec, text))


def answer_button(turn: Turn, deal: Deal, payload: str) -> None:
    """A button pressed under the open question (already checked to be the current one)."""
    question = current_question(turn)
    if payload == SKIP:
        return skip(turn, deal)
    if payload == BACK:
        return back(turn, deal)
    if payload == CANCEL:
        return stop_run(turn, deal)
    spec = question.spec
    if spec is not None and spec.type == "multichoice" and turn.state.part is None:
        return _multichoice_button(turn, deal, question, payload)
    if payload == render.START_OVER and turn.state.part == MORE_PEOPLE:
        return _start_over(turn, deal, question)
    # Otherwise a button stands for what its label says: an option, yes or no.
    _answer(turn, deal, question, payload)


def _accept(turn: Turn, deal: Deal, question: Question, result: Valid | Invalid) -> None:
    if isinstance(result, Invalid):
        turn.say(turn.text("dialog.try_again", error=result.message(turn.lang)))
        return repeat_question(turn, deal)
    _save(turn, deal, question.key, result.value, question.spec)
    if result.evidence:
        add_note(
            turn.session,
            deal_id=deal.id,
            author_id=turn.member.id,
            text=result.evidence,
            now=turn.now,
            field_key=question.key,
        )
    turn.edit(render.answered(turn, question, result.value, result.evidence))
    if question.item is not None and not result.value["checked"]:
        turn.state.passed.append(question.key)
    ask_next(turn, deal)


def save_field(turn: Turn, deal: Deal, key: str, value: Any) -> None:
    """Save a field's value as an answer is saved (deal columns, reminders, target fit)."""
    _save(turn, deal, key, value, turn.playbook.field(key))


def takes_as_answer(turn: Turn, text: str) -> bool:
    """Whether typed text answers the open question (a whole field, not a person's part)."""
    question = current_question(turn)
    if turn.state.part is not None or question.spec is None or says_unknown(text):
        return True
    return isinstance(turn.parse(question.spec, text), Valid)


def _save(turn: Turn, deal: Deal, key: str, value: Any, spec: FieldSpec | None) -> None:
    turn.deals.save(deal, key, value, member_id=turn.member.id, now=turn.now)
    if spec is not None and turn.playbook.stage_of(key).qualifying:
        _record_target_fit(turn, deal, turn.deals.answers(deal))
    if spec is not None and spec.deal_attribute == "amount":
        amount = whole_figure(value)
        set_deal_attributes(turn.session, deal_id=deal.id, now=turn.now, amount_minor=amount)
    elif spec is not None and spec.deal_attribute == "expected_close":
        set_deal_attributes(
            turn.session, deal_id=deal.id, now=turn.now, expected_close=periods.ends(value)
        )
    if spec is not None and spec.remind:
        nudges.plan_date_reminder(turn, deal, spec, value)


def stop_run(turn: Turn, deal: Deal) -> None:
    """End the run early: what was answered is saved; the summary shows what is still open."""
    turn.edit(render.stopped(turn, current_question(turn)))
    finish_run(turn, deal)


def skip(turn: Turn, deal: Deal) -> None:
    """Leave the open question for later: it stays a gap and is asked in a later run.

    Within a person being added, only the part asked is left blank (the name cannot be).
    """
    state = turn.state
    part = _open_part(turn)
    if part is not None and part != PARTS[0]:
        return _store_part(turn, deal, current_question(turn), part, None)
    if state.key and state.key not in state.passed:
        state.passed.append(state.key)
    state.part, state.draft = None, {}
    turn.edit(render.skipped(turn, current_question(turn)))
    ask_next(turn, deal)


def back(turn: Turn, deal: Deal) -> None:
    """Return to the question asked before this one, showing what was saved for it."""
    state = turn.state
    part = _open_part(turn)
    if part is not None and part != PARTS[0]:
        state.part, state.seq = PARTS[PARTS.index(part) - 1].id, state.seq + 1
        return repeat_question(turn, deal)
    if len(state.history) < 2:
        turn.say(turn.text("dialog.no_back"))
        return repeat_question(turn, deal)
    state.history.pop()
    previous = state.history[-1]
    if previous in state.passed:
        state.passed.remove(previous)
    state.part, state.draft = None, {}
    ask(turn, deal, engine.question_for(turn.playbook, previous))


# -- multiple choice -------------------------------------------------------------------------


def _multichoice_button(turn: Turn, deal: Deal, question: Question, payload: str) -> None:
    spec = question.spec
    selected: list[str] = list(turn.state.draft.get("selected", []))
    if payload == DONE:
        if not selected:
            turn.say(turn.text("dialog.pick_at_least_one"))
            return repeat_question(turn, deal)
        ordered = [o.id for o in spec.options if o.id in selected]
        return _accept(turn, deal, question, Valid(ordered))
    option = payload.removeprefix(TOGGLE)
    if option not in {o.id for o in spec.options}:
        return repeat_question(turn, deal)
    selected = [s for s in selected if s != option] if option in selected else selected + [option]
    turn.state.draft = {"selected": selected}
    answers = turn.deals.answers(deal)
    text, choices, _ = render.question(turn, deal, question, answers)
    turn.edit(text, _with_controls(turn, choices))


# -- stakeholders, one part at a time --------------------------------------------------------


def _stakeholder_step(turn: Turn, deal: Deal, question: Question, text: str) -> None:
    state = turn.state
    if state.part == MORE_PEOPLE:
        return _more_people(turn, deal, question, text)
    part = _open_part(turn)
    person = read_person(text) if part == PARTS[0] else None
    if person is not None and len(person) > 1:  # "王总 CIO 支持": ask only what it leaves out
        return _store_parts(turn, deal, question, person)
    result = parse_part(part, text)
    if isinstance(result, Invalid):
        turn.say(turn.text("dialog.try_again", error=result.message(turn.lang)))
        return repeat_question(turn, deal)
    _store_part(turn, deal, question, part, result.value)


def _open_part(turn: Turn) -> Part | None:
    return next((p for p in PARTS if p.id == turn.state.part), None)


def _store_part(turn: Turn, deal: Deal, question: Question, part: Part, value: Any) -> None:
    _store_parts(turn, deal, question, {part.id: value}, after=part)


def _store_parts(
    turn: Turn, deal: Deal, question: Question, parts: dict[str, Any], after: Part = PARTS[0]
) -> None:
    """Keep parts of the person being added and ask the next one not given yet (a part
    skipped is given, as blank); the last part saves the person."""
    state = turn.state
    state.draft = {**state.draft, **parts}
    following = [p for p in PARTS[PARTS.index(after) + 1 :] if p.id not in state.draft]
    if following:
        state.part, state.seq = following[0].id, state.seq + 1
        return repeat_question(turn, deal)
    people = turn.deals.answers(deal).get(question.key) or []
    _save(turn, deal, question.key, [*people, state.draft], question.spec)
    turn.edit(render.person_added(turn, state.draft))
    state.part, state.draft, state.seq = MORE_PEOPLE, {}, state.seq + 1
    repeat_question(turn, deal)


def _start_over(turn: Turn, deal: Deal, question: Question) -> None:
    """Clear the list of people and enter it again: only ever from its button, since typed
    text is never taken for a button (a rep typing "restart" must not lose the list)."""
    _save(turn, deal, question.key, None, question.spec)
    state = turn.state
    state.part, state.draft, state.seq = PARTS[0].id, {}, state.seq + 1
    repeat_question(turn, deal)


def _more_people(turn: Turn, deal: Deal, question: Question, text: str) -> None:
    state = turn.state
    result = turn.parse(_YES_NO, text)
    if isinstance(result, Invalid):
        turn.say(turn.text("dialog.try_again", error=result.message(turn.lang)))
        return repeat_question(turn, deal)
    if result.value:
        state.part, state.draft, state.seq = PARTS[0].id, {}, state.seq + 1
        return repeat_question(turn, deal)
    state.part = None
    ask_next(turn, deal)


_YES_NO = FieldSpec(id="more_people", type="yesno", question={"zh": "", "en": ""})


# -- qualification of a new deal -------------------------------------------------------------


def _open_qualified_deal(turn: Turn, deal: Deal, answers: dict[str, Any]) -> None:
    """Move a new deal into the first working stage, noting if it is outside the target group."""
    misses = _record_target_fit(turn, deal, answers)
    move_deal(turn, deal, turn.playbook.first_open_stage.id, "advance")
    turn.say(render.qualification(turn, deal, misses, answers))
    turn.state.reset()
    start_run(turn, deal, UPDATE)


def _record_target_fit(turn: Turn, deal: Deal, answers: dict[str, Any]) -> list[FieldSpec]:
    """Mark the deal in or outside the target group from its qualifying answers."""
    misses = engine.qualification_misses(turn.playbook, answers)
    # Stored language-neutral (field id = value); readers render it in their own language.
    reason = "; ".join(f"{f.id}={answers[f.id]}" for f in misses)
    set_deal_attributes(
        turn.session,
        deal_id=deal.id,
        now=turn.now,
        outside_target=bool(misses),
        outside_target_reason=reason or None,
    )
    return misses


def state_deal(turn: Turn) -> Deal | None:
    """The deal the member's conversation is about, if it still exists in their team."""
    if turn.state.deal_id is None:
        return None
    deal = turn.deals.load(turn.state.deal_id)
    if deal is None or deal.team_id != turn.member.team_id:
        turn.state.reset()
        return None
    return deal


def resume(turn: Turn) -> None:
    """After an aside (help, gaps, an error), show the open question again to go on with it."""
    deal = state_deal(turn)
    mode = turn.state.mode
    if mode == QUESTION and deal is not None:
        repeat_question(turn, deal)
    elif mode in TEXT_MODES:
        turn.say(turn.text(f"dialog.resume_{mode}"), expects_text=True)


# -- routes ---------------------------------------------------------------------------------


def _question_button(turn: Turn, pressed: AnswerQuestion) -> bool:
    deal = state_deal(turn)
    if turn.state.mode != QUESTION or pressed.seq != turn.state.seq or deal is None:
        return False
    answer_button(turn, deal, pressed.payload)
    return True


BUTTONS: ButtonRoutes = {AnswerQuestion: _question_button}
