"""Cut the part of the Bot API spec that ``tests/fake_bot_api.py`` needs out of ``api.json``.

Usage::

    python tests/data/make_bot_api_subset.py /path/to/api.json [-o tests/data/bot_api_subset.json]

Kept: the methods the fake implements, every type their parameters reference (followed
transitively, so nested request objects such as an inline keyboard can be checked field by
field), and the types the fake answers with (not followed further: their fields that point at
types outside the subset are simply not checked). A kept union type keeps its members.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

METHODS = [
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "sendPhoto",
    "sendChatAction",
    "getChat",
    "getChatMember",
    "leaveChat",
]

# What the fake puts into its answers and updates.
RESPONSE_TYPES = [
    "Update",
    "User",
    "Chat",
    "ChatFullInfo",
    "AcceptedGiftTypes",
    "Message",
    "MaybeInaccessibleMessage",
    "MessageEntity",
    "PhotoSize",
    "CallbackQuery",
    "ChatMember",
    "ChatMemberUpdated",
    "WebhookInfo",
    "BotCommand",
]

DEFAULT_OUTPUT = Path(__file__).with_name("bot_api_subset.json")


def referenced_types(type_expr: str) -> str:
    """``"Array of Array of InlineKeyboardButton"`` -> ``"InlineKeyboardButton"``."""
    return re.sub(r"^(Array of )+", "", type_expr)


def close_over(spec_types: dict[str, Any], roots: list[str], *, follow_fields: bool) -> set[str]:
    """The roots, their union members and (when ``follow_fields``) all types their fields use."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in spec_types:
            continue  # primitives (Integer, String, ...) are not in the types table
        seen.add(name)
        entry = spec_types[name]
        todo.extend(entry.get("subtypes", []))
        if follow_fields:
            for field in entry.get("fields", []):
                todo.extend(referenced_types(t) for t in field["types"])
    return seen


def make_subset(spec: dict[str, Any]) -> dict[str, Any]:
    methods = {name: spec["methods"][name] for name in METHODS}
    param_roots = [
        referenced_types(t)
        for method in methods.values()
        for field in method.get("fields", [])
        for t in field["types"]
    ]
    wanted = close_over(spec["types"], param_roots, follow_fields=True)
    wanted |= close_over(spec["types"], RESPONSE_TYPES, follow_fields=False)
    return {
        "version": spec["version"],
        "release_date": spec["release_date"],
        "source": "PaulSonOfLars/telegram-bot-api-spec api.json (MIT licence)",
        "methods": methods,
        "types": {name: spec["types"][name] for name in sorted(wanted)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the full api.json")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    spec = json.loads(args.source.read_text(encoding="utf-8"))
    subset = make_subset(spec)
    text = json.dumps(subset, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    args.output.write_text(text, encoding="utf-8")
    print(f"{args.output}: {len(subset['methods'])} methods, {len(subset['types'])} types")


if __name__ == "__main__":
    main()
