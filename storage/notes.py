"""Deal notes: a rep's own words about a deal, kept on its timeline (``models.DealNote``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import DealNote, Member


def add_note(
    session: Session,
    *,
    deal_id: int,
    author_id: int,
    text: str,
    now: datetime,
    field_key: str | None = None,
) -> DealNote:
    """Keep ``text`` word for word (not committed here); ``field_key`` ties it to an answer."""
    note = DealNote(
        deal_id=deal_id, author_id=author_id, text=text, field_key=field_key, created_at=now
    )
    session.add(note)
    session.flush()
    return note


def recent_notes(session: Session, *, deal_id: int, limit: int) -> list[tuple[DealNote, str]]:
    """A deal's newest visit notes (not an answer's words), newest first, with who wrote them."""
    statement = (
        select(DealNote, Member.display_name)
        .join(Member, col(Member.id) == col(DealNote.author_id))
        .where(DealNote.deal_id == deal_id, col(DealNote.field_key).is_(None))
        .order_by(col(DealNote.created_at).desc(), col(DealNote.id).desc())
        .limit(limit)
    )
    return [(note, name) for note, name in session.exec(statement)]


def notes_of(session: Session, *, deal_id: int, field_key: str | None = None) -> list[DealNote]:
    """A deal's notes, oldest first; only those about ``field_key`` if given."""
    statement = select(DealNote).where(DealNote.deal_id == deal_id)
    if field_key is not None:
        statement = statement.where(DealNote.field_key == field_key)
    return list(session.exec(statement.order_by(col(DealNote.created_at), col(DealNote.id))))
