"""Telegram updates translated into dialog events."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import ChatMember, Update

from bot.dialog.events import Incoming, Sender

GROUP_TYPES = ("group", "supergroup")


@dataclass(frozen=True)
class GroupMigrated:
    old_chat_id: int
    new_chat_id: int


@dataclass(frozen=True)
class RemovedFromGroup:
    chat_id: int


def read_update(update: Update) -> Incoming | GroupMigrated | RemovedFromGroup | None:
    """What an update means for the dialog; None for updates the bot does not act on."""
    if update.callback_query is not None:
        return _button(update)
    if update.my_chat_member is not None:
        return _membership_change(update)
    message = update.message
    if message is None:
        return _edited(update)
    if message.migrate_to_chat_id:
        return GroupMigrated(message.chat.id, message.migrate_to_chat_id)
    if message.from_user is None or message.from_user.is_bot:
        return None
    chat = message.chat
    text = message.text
    if chat.type in GROUP_TYPES and not (text or "").startswith("/"):
        return None  # the bot listens to commands in groups, never to the chatter
    if chat.type not in GROUP_TYPES and chat.type != "private":
        return None
    return Incoming(
        _sender(message.from_user),
        text=text,
        unsupported=text is None,
        chat_type=chat.type,
        chat_id=chat.id,
        chat_title=chat.title or "",
        update_id=update.update_id,
        message_id=message.message_id,
    )


def _button(update: Update) -> Incoming | None:
    query = update.callback_query
    message = query.message
    if message is None or message.chat.type != "private" or query.data is None:
        return None
    if message.chat.id != query.from_user.id:
        return None  # a private chat is the presser's own; anything else is forged
    return Incoming(
        _sender(query.from_user),
        button=query.data,
        chat_id=message.chat.id,
        update_id=update.update_id,
        message_id=message.message_id,
    )


def _membership_change(update: Update) -> RemovedFromGroup | None:
    change = update.my_chat_member
    gone = change.new_chat_member.status in (ChatMember.LEFT, ChatMember.BANNED)
    if change.chat.type in GROUP_TYPES and gone:
        return RemovedFromGroup(change.chat.id)
    return None


def _edited(update: Update) -> Incoming | None:
    """An edited message in a private chat: say edits are not read (an answer may be wrong)."""
    message = update.edited_message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    return Incoming(
        _sender(message.from_user),
        edited=True,
        chat_id=message.chat.id,
        update_id=update.update_id,
    )


def _sender(user) -> Sender:
    name = " ".join(part for part in (user.first_name, user.last_name) if part) or user.username
    return Sender(user_id=user.id, name=name or "", language_code=user.language_code)
