"""Message texts: questions, answers, gap reports and the summary card, as escaped HTML."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.dialog.state import MORE_PEOPLE
from bot.dialog.turn import Turn
from bot.dialog.writer import Html, Writing, escape
from flows import engine
from flows.engine import AdvanceCheck, GapReport, Question
from flows.i18n import pick
from flows.parsers import example, format_date
from flows.playbook import FieldSpec, Stage
from flows.risks import raised_flags
from flows.stakeholder import PARTS, describe, option_label, part_prompt
from storage.models import Deal
from storage.notes import recent_notes

CHECK, EMPTY_BOX = "✅", "⬜"
RECENT_NOTES, NOTE_PREVIEW = 3, 120
TOGGLE, DONE, YES, NO = "t.", "done", "yes", "no"
START_OVER = "restart"  # clear a list of people and enter it again
FREE_TYPES = ("text", "number", "money", "percent", "date", "milestone", "list")


def plain(text: dict[str, str], lang: str) -> str:
    return pick(text, lang)


def show_date(writer: Writing, day: date) -> str:
    """A date as the reader reads it (2026年12月1日 · Dec 1, 2026)."""
    return format_date(day.isoformat(), writer.lang)


def deal_title(writer: Writing, deal: Deal) -> Html:
    return writer.text(
        "dialog.deal_title", number=deal.number, name=deal.name, customer=deal.customer
    )


def stage_name(writer: Writing, stage_id: str) -> Html:
    """The stage's name; its id if the team's playbook no longer has it."""
    try:
        return writer.local(writer.playbook.stage(stage_id).name)
    except KeyError:
        return escape(stage_id)


# -- questions -------------------------------------------------------------------------------


def question(
    turn: Turn, deal: Deal, q: Question, answers: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bool]:
    """The text of a question, its choice buttons (label, payload) and whether text is wanted."""
    header = turn.text(
        "dialog.question_header", deal=deal_title(turn, deal), stage=stage_name(turn, q.stage_id)
    )
    if q.item is not None:
        body = turn.text("dialog.checklist_question", item=turn.local(q.item.text))
        lines = [header, body, turn.text("dialog.checklist_hint")]
        return join(lines), _yes_no(turn), True
    spec = q.spec
    if spec.type == "stakeholder":
        return _stakeholder_question(turn, header, spec, answers)
    lines = [header, f"<b>{turn.local(spec.question)}</b>"]
    if spec.help:
        lines.append(f"<i>{turn.local(spec.help)}</i>")
    if engine.is_answered(answers, spec.id):
        current = turn.value(spec, answers[spec.id])
        lines.append(turn.text("dialog.current_value", value=current))
    if spec.type in FREE_TYPES and (spec.type != "text" or spec.example):
        lines.append(turn.text("dialog.example", example=example(spec, turn.lang)))
    return join(lines), _choices(turn, spec), spec.type in FREE_TYPES


def _choices(turn: Turn, spec: FieldSpec) -> list[tuple[str, str]]:
    if spec.type == "choice":
        return [(plain(o.label, turn.lang), o.id) for o in spec.options]
    if spec.type == "yesno":
        return _yes_no(turn)
    if spec.type == "multichoice":
        selected = turn.state.draft.get("selected", [])
        marks = [(CHECK if o.id in selected else EMPTY_BOX) for o in spec.options]
        toggles = [
            (f"{mark} {plain(o.label, turn.lang)}", TOGGLE + o.id)
            for mark, o in zip(marks, spec.options, strict=True)
        ]
        return toggles + [(turn.label("dialog.button_done"), DONE)]
    return []


def _yes_no(turn: Turn) -> list[tuple[str, str]]:
    return [(turn.label("dialog.button_yes"), YES), (turn.label("dialog.button_no"), NO)]


def _stakeholder_question(turn: Turn, header: str, spec: FieldSpec, answers: dict[str, Any]):
    people = answers.get(spec.id) or []
    lines = [header, f"<b>{turn.local(spec.question)}</b>"]
    lines += [f"• {escape(describe(p, turn.lang))}" for p in people]
    draft = turn.state.draft
    if draft:
        lines.append(turn.text("dialog.person_so_far", name=draft.get("name", "")))
    if turn.state.part == MORE_PEOPLE:
        lines.append(turn.text("dialog.add_person"))
        return (
            join(lines),
            [*_yes_no(turn), (turn.label("dialog.button_start_over"), START_OVER)],
            False,
        )
    part = next(p for p in PARTS if p.id == turn.state.part)
    lines.append(escape(part_prompt(part, turn.lang)))
    choices = [(option_label(part, o, turn.lang), o) for o in part.options]
    # Free text, or options that are numbers (attitude -3..+3): a typed number is an answer.
    typed = not part.options or any(o.lstrip("+-").isdigit() for o in part.options)
    return join(lines), choices, typed


def answered(turn: Turn, q: Question, value: Any, evidence: str | None = None) -> Html:
    """The question as it reads once answered (replaces the message with its buttons), with
    the rep's words besides the value where they said more."""
    if q.item is not None:
        shown = turn.text("dialog.button_yes" if value["checked"] else "dialog.button_no")
        if value.get("note"):
            shown = Html(f"{shown} — {escape(value['note'])}")
        return turn.text("dialog.answered", question=turn.local(q.item.text), answer=shown)
    shown = turn.value(q.spec, value)
    if q.spec.type == "stakeholder":
        shown = describe(value[-1], turn.lang) if value else ""
    if evidence:
        shown = Html(f"{escape(shown)} — {escape(evidence)}")
    return turn.text("dialog.answered", question=turn.local(q.spec.question), answer=shown)


def skipped(turn: Turn, q: Question) -> Html:
    text = q.item.text if q.item is not None else q.spec.question
    return turn.text("dialog.skipped", question=turn.local(text))


def stopped(turn: Turn, q: Question) -> Html:
    text = q.item.text if q.item is not None else q.spec.question
    return turn.text("dialog.stopped", question=turn.local(text))


def person_added(turn: Turn, person: dict[str, Any]) -> Html:
    return turn.text("dialog.person_added", person=describe(person, turn.lang))


# -- gaps and summaries ----------------------------------------------------------------------


def gap_lines(writer: Writing, report: GapReport) -> list[str]:
    lines = [f"• {writer.local(f.question)}" for f in report.missing]
    lines += [f"☐ {writer.local(i.text)}" for i in report.unchecked]
    return lines


def stage_status(turn: Turn, deal: Deal) -> list[str]:
    """Stage, readiness and open gaps of a deal's current stage."""
    report = turn.deals.gap_report(deal, turn.playbook)
    stage = turn.playbook.stage(deal.stage_id)
    lines = [
        turn.text(
            "dialog.stage_line",
            stage=turn.local(stage.name),
            probability=stage.win_probability,
            readiness=report.readiness,
        ),
    ]
    if deal.status != "open":
        lines.append(turn.text(f"dialog.status_{deal.status}", reason=deal.lost_reason or ""))
    if report.closed:
        lines.append(turn.text("dialog.no_gaps"))
    else:
        lines.append(turn.text("dialog.gaps_title", count=report.open_count))
        lines += gap_lines(turn, report)
    return lines


def coaching(turn: Turn, stage: Stage, limit: int = 6) -> list[str]:
    """The stage's key questions (a few, to stay short on a phone) and next actions."""
    questions = [q for topic in stage.coaching for q in topic.questions][:limit]
    lines = []
    if questions:
        lines.append(turn.text("dialog.coaching_title"))
        lines += [f"❓ {turn.local(q)}" for q in questions]
    if stage.actions:
        lines.append(turn.text("dialog.actions_title"))
        lines += [f"→ {turn.local(a)}" for a in stage.actions]
    return lines


def summary_card(turn: Turn, deal: Deal) -> str:
    """After an update run: where the deal stands, what is open, what to ask and do next."""
    stage = turn.playbook.stage(deal.stage_id)
    lines = [turn.text("dialog.summary_title", deal=deal_title(turn, deal))]
    lines += stage_status(turn, deal)
    following = engine.next_stage(turn.playbook, deal.stage_id)
    if following is not None and deal.status == "open":
        report = turn.deals.gap_report(deal, turn.playbook)
        key = "dialog.ready_to_advance" if report.closed else "dialog.blocked_from"
        lines.append(turn.text(key, stage=turn.local(following.name)))
    lines += risk_lines(turn, deal)
    lines += coaching(turn, stage)
    return join(lines)


def risk_lines(turn: Turn, deal: Deal) -> list[str]:
    """The playbook's risk flags this deal raises, each with the question to think about."""
    flags = raised_flags(
        turn.playbook,
        stage_id=deal.stage_id,
        status=deal.status,
        answers=turn.deals.view(deal).answers,
        expected_close=deal.expected_close,
        today=turn.now.date(),
    )
    if not flags:
        return []
    lines = [turn.text("dialog.risks_title")]
    for flag in flags:
        lines.append(f"⚠️ {turn.local(flag.text)}")
        lines.append(f"   ❓ {turn.local(flag.coaching)}")
    return lines


def gaps(turn: Turn, deal: Deal) -> str:
    lines = [turn.text("dialog.gaps_header", deal=deal_title(turn, deal))]
    lines += stage_status(turn, deal)
    lines += coaching(turn, turn.playbook.stage(deal.stage_id))
    lines += notes(turn, deal)
    return join(lines)


def notes(turn: Turn, deal: Deal) -> list[str]:
    """The deal's latest visit notes, each with its day and author, long ones cut short."""
    kept = recent_notes(turn.session, deal_id=deal.id, limit=RECENT_NOTES)
    if not kept:
        return []
    lines = [turn.text("dialog.notes_header")]
    for note, author in kept:
        text = note.text if len(note.text) <= NOTE_PREVIEW else note.text[:NOTE_PREVIEW] + "…"
        day = show_date(turn, note.created_at.astimezone(turn.now.tzinfo).date())
        lines.append(turn.text("dialog.note_line", day=day, author=author, text=text))
    return lines


def advance_blocked(turn: Turn, deal: Deal, check: AdvanceCheck) -> str:
    lines = [
        turn.text(
            "dialog.advance_blocked",
            deal=deal_title(turn, deal),
            stage=stage_name(turn, check.to_stage),
        )
    ]
    for report in check.blockers:
        lines.append(
            turn.text(
                "dialog.blocker_stage",
                stage=stage_name(turn, report.stage_id),
                count=report.open_count,
            )
        )
        lines += gap_lines(turn, report)
    lines.append(turn.text("dialog.advance_blocked_hint"))
    return join(lines)


def qualification(turn: Turn, deal: Deal, misses: list[FieldSpec], answers: dict[str, Any]):
    stage = stage_name(turn, turn.playbook.first_open_stage.id)
    unknowns = engine.qualification_unknowns(turn.playbook, answers)
    if not misses and unknowns:
        head = turn.text("dialog.qualification_unknown", deal=deal_title(turn, deal), stage=stage)
        return join([head, *[f"• {turn.local(f.question)}" for f in unknowns]])
    if not misses:
        return turn.text("dialog.qualified", deal=deal_title(turn, deal), stage=stage)
    reasons = [f"• {turn.local(f.question)} {escape(turn.value(f, answers[f.id]))}" for f in misses]
    head = turn.text("dialog.outside_target", deal=deal_title(turn, deal), stage=stage)
    return join([head, *reasons, turn.text("dialog.outside_target_hint")])


def deal_line(turn: Turn, deal: Deal, *, readiness: bool = False) -> Html:
    """A deal in a list: its title and stage, and how ready it is to move on if asked."""
    stage = stage_name(turn, deal.stage_id)
    if not readiness or deal.status != "open":
        return turn.text("dialog.deal_line_short", deal=deal_title(turn, deal), stage=stage)
    ready = turn.deals.gap_report(deal, turn.playbook).readiness
    return turn.text("dialog.deal_line", deal=deal_title(turn, deal), stage=stage, readiness=ready)


def join(lines: list[str]) -> str:
    return "\n".join(line for line in lines if line)
