"""The command menus Telegram shows: one for private chats, one for groups, in zh and en."""

from __future__ import annotations

from telegram import Bot, BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

from flows.i18n import LANGUAGES, t

PRIVATE_COMMANDS = (
    "new", "note", "deals", "update", "gaps", "advance", "edit", "lost", "pause",
    "skip", "back", "cancel", "digest", "invite", "lang", "tz", "help",
)  # fmt: skip
GROUP_COMMANDS = ("setgroup", "unsetgroup", "help")


def menu(lang: str, commands: tuple[str, ...]) -> list[BotCommand]:
    return [BotCommand(name, t(lang, f"commands.{name}")) for name in commands]


async def register_commands(bot: Bot, default_language: str) -> None:
    """setMyCommands per scope, per language, plus a default for other languages."""
    scopes = (
        (BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
        (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
    )
    for scope, commands in scopes:
        await bot.set_my_commands(menu(default_language, commands), scope=scope)
        for lang in LANGUAGES:
            await bot.set_my_commands(menu(lang, commands), scope=scope, language_code=lang)
