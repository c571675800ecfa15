"""Updates as Telegram sends them (JSON), read one at a time.

One update the bot cannot read (a field missing, a wrong type, a huge integer) must not stop
the bot nor hold up the others: Telegram would send it again at every start.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Bot, Update
from telegram.ext import Application

log = logging.getLogger(__name__)


def read_updates(raw: list[Any], bot: Bot) -> list[Update]:
    """The updates (of a getUpdates answer, or a webhook's POST) that can be read; each other
    one is logged with its id, never its content, and skipped."""
    updates = []
    for data in raw:
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            _check_integers(data)
            _check_shape(data, UPDATE)
            updates.append(Update.de_json(data, bot))
        except Exception as exc:
            # The exception's kind only: its message may quote what the update holds.
            kind = type(exc).__name__
            log.warning("update %s could not be read (%s); skipped", update_id_of(data), kind)
    return updates


# Telegram's ids fit in 52 bits ("at most 52 significant bits"); the database stores 64. A
# larger integer is not from Telegram, and would fail in the middle of a turn.
INTEGER_LIMIT = 2**63


def _check_integers(data: Any) -> None:
    if isinstance(data, dict):
        for value in data.values():
            _check_integers(value)
    elif isinstance(data, list):
        for value in data:
            _check_integers(value)
    elif isinstance(data, int) and not -INTEGER_LIMIT < data < INTEGER_LIMIT:
        raise OverflowError("an integer beyond 64 bits")


# The fields StageCoach reads, with their types (True: required). PTB builds its objects from
# whatever it is given, so an update with a number for a text would fail in the middle of a
# turn; checked here, it is unreadable like any other malformed update. Telegram's own updates
# always pass.
Shape = dict[str, tuple[Any, bool]]
USER: Shape = {"id": (int, True), "is_bot": (bool, True), "first_name": (str, True)}
CHAT: Shape = {"id": (int, True), "type": (str, True), "title": (str, False)}
MESSAGE: Shape = {
    "message_id": (int, True),
    "date": (int, True),
    "chat": (CHAT, True),
    "from": (USER, False),
    "text": (str, False),
    "entities": (list, False),
    "migrate_to_chat_id": (int, False),
}
UPDATE: Shape = {
    "message": (MESSAGE, False),
    "edited_message": (MESSAGE, False),
    "callback_query": (
        {
            "id": (str, True),
            "from": (USER, True),
            "chat_instance": (str, True),
            "data": (str, False),
            "message": (MESSAGE, False),
        },
        False,
    ),
    "my_chat_member": (
        {
            "chat": (CHAT, True),
            "from": (USER, True),
            "date": (int, True),
            "old_chat_member": (dict, True),
            "new_chat_member": (dict, True),
        },
        False,
    ),
}


def _check_shape(data: dict[str, Any], shape: Shape) -> None:
    for name, (kind, required) in shape.items():
        value = data.get(name)
        if value is None:
            if required:
                raise KeyError(name)
        elif isinstance(kind, dict):
            if not isinstance(value, dict):
                raise TypeError(f"{name} is not an object")
            _check_shape(value, kind)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} is not {kind.__name__}")


async def tell_unreadable(application: Application, raw: list[Any], read: list[Update]) -> None:
    """Tell the sender of each update that could not be read, in a private chat, that it was
    not saved: they would otherwise wait for an answer that never comes."""
    adapter = application.bot_data.get("adapter")
    done = {update.update_id for update in read}
    for data in raw:
        sender = _private_sender(data) if update_id_of(data) not in done else None
        if adapter is not None and sender is not None:
            await adapter.not_saved(*sender)


def _private_sender(data: Any) -> tuple[int, str | None] | None:
    """The private chat an unreadable update came from and its sender's language, if the raw
    update says so plainly; None for anything else (a group is not written to)."""
    if not isinstance(data, dict):
        return None
    for kind in ("message", "edited_message", "callback_query"):
        part = data.get(kind)
        if not isinstance(part, dict):
            continue
        sender = part.get("from")
        chat = part.get("chat") if kind != "callback_query" else sender
        if not isinstance(sender, dict) or not isinstance(chat, dict):
            return None
        chat_id, user_id = chat.get("id"), sender.get("id")
        if kind != "callback_query" and chat.get("type") != "private":
            return None
        if not _is_int(chat_id) or chat_id != user_id:
            return None
        code = sender.get("language_code")
        return chat_id, code if isinstance(code, str) else None
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**52


def update_id_of(data: Any) -> int:
    """An update's id, or -1 when it has none that is an integer."""
    update_id = data.get("update_id") if isinstance(data, dict) else None
    return update_id if isinstance(update_id, int) and not isinstance(update_id, bool) else -1


def chat_of(update: Update) -> int:
    """The chat an update belongs to: a person's private chat (their conversation: messages
    and button presses alike), or a group (its link to the team changes in order)."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return -update.update_id  # neither (no such update is allowed today): on its own
