"""A turn's replies kept in the outbox (storage/outbox.py), and read back for sending.

Kept in the turn's own transaction, a reply to a saved answer cannot be lost: it is committed
with the answer, and whatever was not sent when the process died goes out after a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.dialog.events import Button, Incoming, Queued, Reply, Response
from storage.models import OutboxMessage
from storage.outbox import NewMessage, keep

# The writer sends its rows at once; another instance takes them over only after this long.
LEASE = timedelta(seconds=60)


def keep_response(
    session: Session, response: Response, event: Incoming, *, now: datetime
) -> list[Queued]:
    """Write the response's messages to the outbox; the same, with their row ids.

    The edit of a pressed message targets that message; a typed answer's edit targets the
    question it answers (the newest one sent to the chat). A button press's toast is not kept:
    Telegram forgets the press after a few seconds.
    """
    home = event.chat_id if event.chat_id is not None else event.sender.user_id
    planned: list[tuple[int, Reply, bool, int | None]] = []
    edited = response.edited
    pressed = event.message_id if event.button is not None else None
    if edited is not None and (event.button is None or pressed is not None):
        planned.append((home, edited, True, pressed))
    for reply in response.replies:
        planned.append((reply.chat_id or home, reply, False, None))
    rows = [
        NewMessage(
            chat_id=chat_id,
            body=_body(reply),
            kind="edit" if edit else "send",
            asks=reply.asks,
            photo=reply.photo,
            message_id=message_id,
        )
        for chat_id, reply, edit, message_id in planned
    ]
    ids = keep(session, rows, now=now, lease=LEASE)
    return [
        Queued(row_id, chat_id, reply, edit, message_id)
        for row_id, (chat_id, reply, edit, message_id) in zip(ids, planned, strict=True)
    ]


def queued(row: OutboxMessage) -> Queued:
    """An outbox row as it is sent."""
    body = row.body
    reply = Reply(
        body["text"],
        tuple(tuple(Button(label, data) for label, data in line) for line in body["buttons"]),
        asks=row.asks,
        photo=row.photo,
        photo_refused=body.get("photo_refused"),
    )
    return Queued(row.id, row.chat_id, reply, row.kind == "edit", row.message_id)


def _body(reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": reply.text,
        "buttons": [[[b.label, b.data] for b in line] for line in reply.buttons],
    }
    if reply.photo_refused:
        body["photo_refused"] = reply.photo_refused
    return body
