"""Visit notes: what a rep writes after a visit, kept word for word on the deal's timeline,
read for values (``flows.extract``) and confirmed on one card before anything is saved.

A note is free text when nothing is asked, ``/note [deal] [text]``, the words after ``/new``
and a long message that does not answer the question open. The card lists each value read with
the words it came from; "save all" keeps every new one, a value that would replace a saved
answer is shown old → new and kept only by its own button, "fix" asks that question (with what
was read shown), "drop" leaves it out. Then the stage's open questions are asked as usual.
"""

from __future__ import annotations

from typing import Any

from bot.dialog import questions, render
from bot.dialog.access import find_deal, refused_as_lost, visible_deals
from bot.dialog.buttons import NoteCard, NoteDeal
from bot.dialog.events import Button
from bot.dialog.state import NEW_CUSTOMER, NOTE_CARD, NOTE_DEAL, NOTE_TEXT, QUALIFY, UPDATE
from bot.dialog.turn import ButtonRoutes, CommandRoutes, Turn, is_number
from bot.dialog.writer import Html, escape
from flows import engine
from flows.extract import extract
from flows.parsers import example
from flows.periods import show_period
from flows.reading import Valid, fold, has_words, says_unknown
from storage.models import Deal
from storage.notes import add_note

# Idle text shorter than this is not a note ("ok", "hi", "谢谢").
MIN_NOTE_CHARS = 6
# A message at an open question this long, that does not answer it, is read as a note.
LONG_MESSAGE_CHARS = 20
RECENT_DEALS = 5
# The words shown under a value; the whole note is kept, so a long sentence is cut on the card.
EVIDENCE_CHARS = 80
SAVE_ALL, FIX, DROP, KEEP_NEW, DISCARD = "s", "f", "d", "k", "x"
# Common endings of company names, left out when looking for the customer in a note.
_COMPANY_ENDINGS = (
    "股份有限公司", "有限责任公司", "有限公司", "公司", "集团",
    " co., ltd.", " ltd.", " ltd", " inc.",
)  # fmt: skip


# -- taking a note ---------------------------------------------------------------------------


def note_command(turn: Turn, args: str) -> None:
    """``/note``, ``/note 3``, ``/note 3 text`` or ``/note text``."""
    first, _, rest = args.partition(" ")
    deal = None
    if first and is_number(first.removeprefix("#")):
        deal, _ = find_deal(turn.session, turn.member, first)
        if deal is None:
            turn.say(turn.text("dialog.deal_not_found", ref=first))
            return
        args = rest.strip()
    if not args:
        turn.state.reset()
        turn.state.mode, turn.state.deal_id = NOTE_TEXT, deal.id if deal else None
        turn.say(turn.text("note.ask"), expects_text=True)
        return
    take_note(turn, args, deal)


def idle_text(turn: Turn, text: str) -> bool:
    """Free text with nothing asked: a note, unless it is too short to be one."""
    if len(text.strip()) < MIN_NOTE_CHARS or not has_words(text):
        return False
    take_note(turn, text, None)
    return True


def is_note_at_question(turn: Turn, deal: Deal, text: str) -> bool:
    """A long message at an open question is a note when it does not answer the question, or
    when it holds facts for other fields too (at "客户的背景是什么？", a whole visit)."""
    if len(text) < LONG_MESSAGE_CHARS or turn.state.part is not None:
        return False
    if not questions.takes_as_answer(turn, text):
        return True
    found = extract(text, turn.playbook, stage_id=_reading_stage(turn, deal), now=turn.now)
    return any(key != turn.state.key for key in found.fields)


def note_text(turn: Turn, text: str) -> None:
    """The note asked for by ``/note``, or more words while a note waits for its deal."""
    state = turn.state
    if state.mode == NOTE_DEAL:
        text = f"{state.draft.get('note', '')}\n{text}".strip()
    deal = turn.deals.load(state.deal_id) if state.deal_id else None
    take_note(turn, text, deal)


def take_note(turn: Turn, text: str, deal: Deal | None, after: str = UPDATE) -> None:
    """Keep the note on its deal and show what it says; without a deal, ask which one."""
    deal = deal or _deal_named(turn, text)
    if deal is None:
        return _ask_which_deal(turn, text)
    add_note(turn.session, deal_id=deal.id, author_id=turn.member.id, text=text, now=turn.now)
    if refused_as_lost(turn, deal):  # kept, as every note is, but nothing is read into it
        return turn.state.reset()
    found = extract(text, turn.playbook, stage_id=_reading_stage(turn, deal), now=turn.now)
    answers = turn.deals.answers(deal)
    items = []
    for key, proposal in found.fields.items():
        old = answers.get(key) if engine.is_answered(answers, key) else None
        value = _with_people_kept(turn, key, old, proposal.value)
        if value != old:
            items.append([key, value, old, proposal.evidence])
    state = turn.state
    state.reset()
    if not items:
        turn.say(turn.text("note.kept_nothing_read", deal=render.deal_title(turn, deal)))
        return questions.start_run(turn, deal, after)
    state.mode, state.deal_id, state.seq = NOTE_CARD, deal.id, state.seq + 1
    state.draft = {"items": items, "after": after}
    if found.next_step is not None:
        state.draft["next_step"] = [found.next_step.text, found.next_step.when]
    show_card(turn, deal)


def _reading_stage(turn: Turn, deal: Deal) -> str:
    """The stage a note is read for: a deal still being qualified, the one it will open in."""
    stage = turn.playbook.stage(deal.stage_id)
    return turn.playbook.first_open_stage.id if stage.qualifying else stage.id


def new_from_note(turn: Turn) -> None:
    """The new-deal button under a note: open the deal; the note waits in the draft."""
    note = turn.state.draft.get("note")
    turn.state.reset()
    turn.state.mode, turn.state.draft = NEW_CUSTOMER, {"note": note} if note else {}
    turn.say(turn.text("dialog.ask_customer"), expects_text=True)


def after_new_deal(turn: Turn, deal: Deal, note: str | None) -> None:
    """A deal just opened: read the note it came with, then qualify it."""
    after = QUALIFY if turn.playbook.qualifying_stage else UPDATE
    if note:
        return take_note(turn, note, deal, after)
    questions.start_run(turn, deal, after)


def _deal_named(turn: Turn, text: str) -> Deal | None:
    """The one open deal whose customer or name the note mentions."""
    folded = fold(text)
    named = [d for d in visible_deals(turn.session, turn.member) if _mentions(folded, d)]
    return named[0] if len(named) == 1 else None


def _mentions(folded: str, deal: Deal) -> bool:
    customer = fold(deal.customer)
    for ending in _COMPANY_ENDINGS:
        customer = customer.removesuffix(ending)
    names = [n for n in (customer, fold(deal.name)) if len(n) >= 2]
    return any(name in folded for name in names)


def _ask_which_deal(turn: Turn, text: str) -> None:
    state = turn.state
    state.reset()
    state.mode, state.draft, state.seq = NOTE_DEAL, {"note": text}, state.seq + 1
    deals = visible_deals(turn.session, turn.member)[:RECENT_DEALS]
    rows = [
        [Button(f"#{d.number} {d.name} · {d.customer}", NoteDeal(state.seq, d.id).encode())]
        for d in deals
    ]
    rows.append([Button(turn.label("note.button_new_deal"), NoteDeal(state.seq, 0).encode())])
    turn.say(turn.text("note.which_deal"), rows)


def _with_people_kept(turn: Turn, key: str, old: Any, value: Any) -> Any:
    """People read from a note join those already on the map (by name), never replace them."""
    if turn.playbook.field(key).type != "stakeholder" or not isinstance(old, list):
        return value
    people = {person.get("name"): dict(person) for person in old}
    for person in value:
        people[person["name"]] = {**person, **people.get(person["name"], {})}
    return list(people.values())


# -- the card --------------------------------------------------------------------------------


def show_card(turn: Turn, deal: Deal, *, edit: bool = False) -> None:
    state = turn.state
    lines = [turn.text("note.card_header", deal=render.deal_title(turn, deal))]
    rows: list[list[Button]] = []
    for index, (key, value, old, evidence) in enumerate(state.draft["items"], start=1):
        spec = turn.playbook.field(key)
        shown = escape(turn.value(spec, value))
        if old is not None:
            shown = Html(f"{escape(turn.value(spec, old))} → {shown}")
        mark = "⚠️ " if old is not None else ""
        question = turn.local(spec.question)
        line = f"{index}. {mark}{question} <b>{shown}</b>"
        if evidence != turn.value(spec, value):  # the words it came from, unless the same
            words = evidence if len(evidence) <= EVIDENCE_CHARS else evidence[:EVIDENCE_CHARS] + "…"
            line += f"\n   <i>「{escape(words)}」</i>"
        lines.append(line)
        row = [Button(f"✏️ {index}", _press(turn, FIX, index))]
        if spec.type == "stakeholder":
            row = []  # people are fixed one by one with /update, not retyped here
        if old is not None:
            row.insert(0, Button(f"✅ {index}", _press(turn, KEEP_NEW, index)))
        rows.append([*row, Button(f"✖ {index}", _press(turn, DROP, index))])
    if "next_step" in state.draft:
        text, when = state.draft["next_step"]
        lines.append(turn.text("note.next_step", text=text, when=show_period(when, turn.lang)))
    new = sum(1 for _, _, old, _ in state.draft["items"] if old is None)
    if any(old is not None for _, _, old, _ in state.draft["items"]):
        lines.append(turn.text("note.conflicts_apart"))
    final = [Button(turn.label("note.button_discard"), _press(turn, DISCARD, 0))]
    if new:
        save_all = turn.label("note.button_save_all", count=new)
        final.insert(0, Button(save_all, _press(turn, SAVE_ALL, 0)))
    rows.append(final)
    text = render.join(lines)
    if edit:
        turn.edit(text, rows)
    else:
        turn.say(text, rows)


def _press(turn: Turn, action: str, index: int) -> str:
    return NoteCard(turn.state.seq, action, index).encode()


def card_button(turn: Turn, pressed: NoteCard) -> bool:
    state = turn.state
    deal = questions.state_deal(turn)
    if state.mode != NOTE_CARD or pressed.seq != state.seq or deal is None:
        return False
    items = state.draft["items"]
    if pressed.action in (FIX, DROP, KEEP_NEW) and not 1 <= pressed.index <= len(items):
        return False
    if pressed.action == SAVE_ALL:
        kept = [item for item in items if item[2] is None]
        for key, value, _, _ in kept:
            questions.save_field(turn, deal, key, value)
        state.draft["items"] = [item for item in items if item[2] is not None]
        state.draft["saved"] = state.draft.get("saved", 0) + len(kept)
    elif pressed.action == KEEP_NEW:
        key, value, _, _ = items.pop(pressed.index - 1)
        questions.save_field(turn, deal, key, value)
        state.draft["saved"] = state.draft.get("saved", 0) + 1
    elif pressed.action == DROP:
        items.pop(pressed.index - 1)
    elif pressed.action == FIX:
        return _fix(turn, deal, items.pop(pressed.index - 1))
    elif pressed.action == DISCARD:
        state.draft["items"] = []
    else:
        return False
    _go_on(turn, deal)
    return True


def _go_on(turn: Turn, deal: Deal) -> None:
    """The card again while values wait; else what was saved, and the stage's questions."""
    state = turn.state
    state.seq += 1
    if state.draft["items"]:
        return show_card(turn, deal, edit=True)
    saved, after = state.draft.get("saved", 0), state.draft.get("after", UPDATE)
    turn.edit(turn.text("note.card_done", count=saved, deal=render.deal_title(turn, deal)))
    questions.start_run(turn, deal, after)


def _fix(turn: Turn, deal: Deal, item: list[Any]) -> bool:
    """Ask the question of one value read, showing it; the answer goes back to the card."""
    key, value, _, _ = item
    state = turn.state
    state.draft["fixing"] = key
    state.seq += 1
    spec = turn.playbook.field(key)
    turn.edit(turn.text("note.fixing", question=turn.local(spec.question)))
    fix = turn.text(
        "note.fix",
        question=turn.local(spec.question),
        read=turn.value(spec, value),
        example=example(spec, turn.lang),
    )
    turn.say(fix, expects_text=True)
    return True


def card_text(turn: Turn, text: str) -> None:
    """Typed at the card: the answer to a value being fixed, else another note on the deal
    (its card replaces this one; both notes are kept)."""
    state = turn.state
    deal = questions.state_deal(turn)
    if deal is None:
        return
    key = state.draft.get("fixing")
    if key is None:
        return take_note(turn, text, deal, state.draft.get("after", UPDATE))
    spec = turn.playbook.field(key)
    state.draft["fixing"] = None
    if says_unknown(text):  # "不清楚": the value read is dropped, the gap stays open
        turn.say(turn.text("note.fix_dropped", question=turn.local(spec.question)))
    else:
        result = turn.parse(spec, text)
        if not isinstance(result, Valid):
            state.draft["fixing"] = key
            error = result.message(turn.lang)
            return turn.say(turn.text("dialog.try_again", error=error), expects_text=True)
        questions.save_field(turn, deal, key, result.value)
        state.draft["saved"] = state.draft.get("saved", 0) + 1
        shown = turn.value(spec, result.value)
        turn.say(turn.text("note.fixed", question=turn.local(spec.question), value=shown))
    state.seq += 1
    if state.draft["items"]:
        return show_card(turn, deal)
    questions.start_run(turn, deal, state.draft.get("after", UPDATE))


def deal_button(turn: Turn, pressed: NoteDeal) -> bool:
    """The deal a waiting note is about, or a new one (id 0)."""
    state = turn.state
    if state.mode != NOTE_DEAL or pressed.seq != state.seq:
        return False
    if pressed.deal_id == 0:
        new_from_note(turn)
        return True
    deal = turn.deals.load(pressed.deal_id)
    if deal is None or deal not in visible_deals(turn.session, turn.member):
        return False
    take_note(turn, state.draft.get("note", ""), deal)
    return True


COMMANDS: CommandRoutes = {"note": note_command}
BUTTONS: ButtonRoutes = {NoteCard: card_button, NoteDeal: deal_button}
