"""A fake Telegram Bot API server on loopback, for driving a real PTB ``Application`` in tests.

    async with FakeBotApi() as fake:
        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.base_file_url)
            .build()
        )
        app.add_handler(...)
        await app.initialize()
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            fake.user_message(42, "/start")
            await fake.wait_for(lambda: fake.last_text(42) is not None)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

It speaks HTTP like api.telegram.org (``POST /bot<token>/<method>`` with a JSON, urlencoded or
multipart body; answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": ..., "parameters": ...}`` with HTTP status N) and rejects what Telegram rejects:
malformed HTML, over-long texts, bad inline keyboards, edits of missing or unchanged messages,
unknown or lost chats, stale callback queries, flood-limit overruns. Every call is checked
against the Bot API spec in ``tests/data/bot_api_subset.json``: a missing required parameter
is a 400, an unknown parameter or field is recorded in ``spec_violations``.

Where Telegram is lenient and its documentation is not, the fake follows the documentation:
a bare ``&`` that starts no entity ("AT&T") is rejected (``strict_html=False`` accepts it as
Telegram's server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

SPEC_PATH = Path(__file__).parent / "data" / "bot_api_subset.json"

BOT_ID = 123456
BOT_USERNAME = "stagecoach_test_bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "StageCoach", "username": BOT_USERNAME}

MAX_TEXT = 4096  # UTF-16 code units, after entity parsing
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes of UTF-8
MAX_BUTTONS = 100

# Update types a bot gets when it never passed allowed_updates (Bot API: "all update types
# except chat_member, message_reaction, and message_reaction_count").
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
MEMBER_TYPES = {
    "creator": "ChatMemberOwner",
    "administrator": "ChatMemberAdministrator",
    "member": "ChatMemberMember",
    "restricted": "ChatMemberRestricted",
    "left": "ChatMemberLeft",
    "kicked": "ChatMemberBanned",
}


class ApiError(Exception):
    """An error answer, exactly as Telegram words it."""

    def __init__(self, error_code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Upload:
    """A file that came in a multipart body."""

    filename: str | None
    content_type: str
    data: bytes


# --------------------------------------------------------------------------------------------
# HTML parse mode, after tdlib's parser (which is what the Bot API server runs).
# --------------------------------------------------------------------------------------------


class HtmlParseError(ValueError):
    pass


SIMPLE_TAG_ENTITIES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}
HTML_TAGS = frozenset(SIMPLE_TAG_ENTITIES) | {"a", "code", "pre", "tg-emoji", "blockquote"}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
HTML_ENTITY_RE = re.compile(r"&(?:#x([0-9a-fA-F]{1,8})|#([0-9]{1,8})|([a-zA-Z]+));?")
HTML_SPACE = " \t\r\n\v\f"
TEXT_RUN_RE = re.compile(r"[^<&]+")
NAME_TOKEN_RE = re.compile(r"[A-Za-z0-9.-]*")
# What counts as a link target: "scheme://anything" or "host.tld[/path]".
URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://\S+|[^\s/?#]+\.[a-z]{2,}(?:[/?#]\S*)?", re.I)


def decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character ``&...`` at ``pos`` stands for, and where it ends; None if it is no entity.

    Like tdlib: the ``;`` is optional, numeric references must be 1..0x10FFFF.
    """
    match = HTML_ENTITY_RE.match(text, pos)
    if not match:
        return None
    hex_digits, decimal, name = match.groups()
    if name is not None:
        char = NAMED_ENTITIES.get(name)
        return (char, match.end()) if char else None
    code = int(hex_digits, 16) if hex_digits is not None else int(decimal)
    if not 0 < code < 0x10FFFF:
        return None
    if 0xD800 <= code <= 0xDFFF:
        raise HtmlParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units"
        )
    return chr(code), match.end()


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    text_offset: int  # where its content starts in the decoded text


class HtmlParser:
    """``parse(html) -> (text, entities)``; raises HtmlParseError with Telegram's message."""

    def __init__(self, html: str, *, strict: bool = True):
        self.src = html
        self.strict = strict
        self.out: list[str] = []
        self.text_len = 0
        self.utf16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        pos = 0
        while pos < len(self.src):
            run = TEXT_RUN_RE.match(self.src, pos)
            if run:
                self._emit(run.group())
                pos = run.end()
            elif self.src[pos] == "&":
                pos = self._entity(pos)
            elif self.src.startswith("</", pos):
                pos = self._end_tag(pos)
            else:
                pos = self._start_tag(pos)
        if self.stack:
            name = self.stack[-1].name
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{name}"')
        for entity in self.entities:
            entity.pop("_language", None)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _emit(self, text: str) -> None:
        self.out.append(text)
        self.text_len += len(text)
        self.utf16 += utf16_len(text)

    def _byte_offset(self, pos: int) -> int:
        # Telegram reports positions in bytes of the UTF-8 source.
        return len(self.src[:pos].encode("utf-8"))

    def _error(self, message: str, pos: int, suffix: str = "") -> HtmlParseError:
        return HtmlParseError(f"{message} at byte offset {self._byte_offset(pos)}{suffix}")

    def _entity(self, pos: int) -> int:
        decoded = decode_html_entity(self.src, pos)
        if decoded:
            self._emit(decoded[0])
            return decoded[1]
        if self.strict:
            # Telegram's server keeps such an "&" as text, but its documentation says every
            # "&" that is not part of an entity must be escaped: fail like a parse error.
            raise self._error('Unescaped "&" (use "&amp;")', pos)
        self._emit("&")
        return pos + 1

    def _skip_space(self, pos: int) -> int:
        while pos < len(self.src) and self.src[pos] in HTML_SPACE:
            pos += 1
        return pos

    def _start_tag(self, begin: int) -> int:
        src = self.src
        pos = begin + 1
        while pos < len(src) and src[pos] not in HTML_SPACE and src[pos] != ">":
            pos += 1
        if pos >= len(src):
            raise self._error("Unclosed start tag", begin)
        name = src[begin + 1 : pos].lower()
        if name not in HTML_TAGS:
            raise self._error(f'Unsupported start tag "{name}"', begin)
        attributes, pos = self._attributes(name, begin, pos)
        argument = ""
        if name == "a":
            argument = attributes.get("href", "")
        elif name == "code" and attributes.get("class", "").startswith("language-"):
            argument = attributes["class"].removeprefix("language-")
        elif name == "span":
            if attributes.get("class") != "tg-spoiler":
                raise self._error('Tag "span" must have class "tg-spoiler"', begin)
        elif name == "tg-emoji":
            argument = attributes.get("emoji-id", "")
        elif name == "blockquote" and "expandable" in attributes:
            argument = "expandable"
        self.stack.append(_OpenTag(name, argument, self.utf16, self.text_len))
        return pos + 1

    def _attributes(self, tag: str, begin: int, pos: int) -> tuple[dict[str, str], int]:
        """Parse ``name="value"`` pairs up to the closing ``>``; returns them and its position."""
        src = self.src
        attributes: dict[str, str] = {}
        while True:
            pos = self._skip_space(pos)
            if pos >= len(src):
                raise self._error("Unclosed start tag", begin)
            if src[pos] == ">":
                return attributes, pos
            name_start = pos
            while pos < len(src) and src[pos] not in HTML_SPACE and src[pos] not in "=>":
                pos += 1
            name = src[name_start:pos].lower()
            if not name:
                raise self._error(f'Empty attribute name in the tag "{tag}"', begin)
            pos = self._skip_space(pos)
            if pos < len(src) and src[pos] == "=":
                pos = self._skip_space(pos + 1)
                if pos >= len(src):
                    raise self._error(f'Unclosed start tag "{tag}"', begin)
                attributes[name], pos = self._attribute_value(pos, begin)
            else:
                attributes[name] = ""  # a bare attribute, as in <blockquote expandable>

    def _attribute_value(self, pos: int, begin: int) -> tuple[str, int]:
        src = self.src
        quote = src[pos]
        if quote not in "'\"":
            token = NAME_TOKEN_RE.match(src, pos)
            assert token is not None  # the pattern matches the empty string
            end = token.end()
            if end < len(src) and src[end] not in HTML_SPACE and src[end] != ">":
                raise self._error("Unexpected end of name token", pos)
            return token.group().lower(), end
        value: list[str] = []
        pos += 1
        while pos < len(src) and src[pos] != quote:
            decoded = decode_html_entity(src, pos) if src[pos] == "&" else None
            if decoded:
                value.append(decoded[0])
                pos = decoded[1]
            else:
                # A stray "&" inside a value (typically a URL query) is kept: links are the
                # common case and Telegram takes them as they are.
                value.append(src[pos])
                pos += 1
        if pos >= len(src):
            raise self._error("Unclosed start tag", begin)
        return "".join(value), pos + 1

    def _end_tag(self, begin: int) -> int:
        src = self.src
        if not self.stack:
            raise self._error("Unexpected end tag", begin)
        pos = begin + 2
        while pos < len(src) and src[pos] not in HTML_SPACE and src[pos] != ">":
            pos += 1
        name = src[begin + 2 : pos].lower()
        pos = self._skip_space(pos)
        if pos >= len(src) or src[pos] != ">":
            raise self._error("Unclosed end tag", begin)
        open_tag = self.stack[-1]
        if name and name != open_tag.name:
            found = f', expected "</{open_tag.name}>", found "</{name}>"'
            raise self._error("Unmatched end tag", begin, found)
        self.stack.pop()
        if self.utf16 > open_tag.utf16_offset:
            self._close_entity(open_tag)
        return pos + 1

    def _close_entity(self, tag: _OpenTag) -> None:
        entity: dict[str, Any] = {
            "offset": tag.utf16_offset,
            "length": self.utf16 - tag.utf16_offset,
        }
        if tag.name in SIMPLE_TAG_ENTITIES:
            entity["type"] = SIMPLE_TAG_ENTITIES[tag.name]
        elif tag.name == "a":
            url = tag.argument or "".join(self.out)[tag.text_offset :]
            link = link_entity(url)
            if link is None:
                return  # Telegram drops a link it cannot use and keeps the text
            entity.update(link)
        elif tag.name == "code":
            entity.update(type="code", _language=tag.argument)
        elif tag.name == "pre":
            entity["type"] = "pre"
            language = tag.argument
            last = self.entities[-1] if self.entities else {}
            if last.get("type") == "code" and _span(last) == _span(entity):
                # <pre><code class="language-x">...</code></pre> is one pre entity
                language = self.entities.pop()["_language"] or language
            if language:
                entity["language"] = language
        elif tag.name == "blockquote":
            entity["type"] = f"{tag.argument}_blockquote" if tag.argument else "blockquote"
        elif tag.name == "tg-emoji":
            if not tag.argument:
                return
            entity.update(type="custom_emoji", custom_emoji_id=tag.argument)
        self.entities.append(entity)


def _span(entity: dict[str, Any]) -> tuple[int, int]:
    return entity["offset"], entity["length"]


def link_entity(url: str) -> dict[str, Any] | None:
    """The text_link / text_mention entity fields for an ``<a href>``, None if unusable."""
    url = url.strip()
    mention = re.fullmatch(r"tg://user\?id=(\d+)", url)
    if mention:
        user = {"id": int(mention.group(1)), "is_bot": False, "first_name": "User"}
        return {"type": "text_mention", "user": user}
    if not URL_RE.fullmatch(url):
        return None
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and not parts.path:
        url = parts._replace(path="/").geturl()  # Telegram normalises "x.com" to "x.com/"
    return {"type": "text_link", "url": url}


def parse_html(html: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    return HtmlParser(html, strict=strict).parse()


# --------------------------------------------------------------------------------------------
# The spec: coercing form values to their types, required parameters, unknown fields.
# --------------------------------------------------------------------------------------------


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


PRIMITIVES = frozenset({"Integer", "Float", "String", "Boolean", "InputFile", "True"})
INT_RE = re.compile(r"-?\d+")


def _element_type(type_expr: str) -> str | None:
    return type_expr[len("Array of ") :] if type_expr.startswith("Array of ") else None


def coerce_value(types: list[str], value: Any) -> Any:
    """Turn a form/query string into the value its spec type names (JSON for objects)."""
    if not isinstance(value, str):
        return value
    if "Integer" in types and INT_RE.fullmatch(value):
        return int(value)
    if "String" in types or "InputFile" in types:
        return value
    if "Boolean" in types or "True" in types:
        lowered = value.lower()
        if lowered in ("true", "1", "false", "0"):
            return lowered in ("true", "1")
        return value
    if "Float" in types:
        try:
            return float(value)
        except ValueError:
            return value
    try:
        return json.loads(value)  # objects and arrays come JSON-serialised
    except ValueError:
        return value


class SpecChecker:
    """Checks calls against the spec subset; ``problems`` never raise, they are recorded."""

    def __init__(self, spec: dict[str, Any]):
        self.methods = spec["methods"]
        self.types = spec["types"]

    def fields(self, method: str) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.methods[method].get("fields", [])}

    def coerce(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        known = self.fields(method)
        return {
            name: coerce_value(known[name]["types"], value) if name in known else value
            for name, value in params.items()
        }

    def missing_required(self, method: str, params: dict[str, Any]) -> list[str]:
        return [
            name
            for name, spec in self.fields(method).items()
            if spec["required"] and params.get(name) in (None, "")
        ]

    def problems(self, method: str, params: dict[str, Any]) -> list[str]:
        known = self.fields(method)
        found = []
        for name, value in params.items():
            if name not in known:
                if not isinstance(value, Upload):  # an attach://name part is no parameter
                    found.append(f"{method}: unknown parameter {name!r}")
                continue
            found += self.check(known[name]["types"], value, f"{method}.{name}")
        return found

    def check(self, types: list[str], value: Any, path: str) -> list[str]:
        """Problems of ``value`` against a union of type expressions ([] if any fits)."""
        attempts = [self._check_one(t, value, path) for t in types]
        if any(not problems for problems in attempts):
            return []
        # Report against the alternative of the right shape, if there is one.
        return min(attempts, key=len)

    def _check_one(self, type_expr: str, value: Any, path: str) -> list[str]:
        element = _element_type(type_expr)
        if element is not None:
            if not isinstance(value, list):
                return [f"{path}: expected {type_expr}, got {type(value).__name__}"]
            found: list[str] = []
            for index, item in enumerate(value):
                found += self._check_one(element, item, f"{path}[{index}]")
            return found
        if type_expr in PRIMITIVES:
            ok = _primitive_ok(type_expr, value)
            return [] if ok else [f"{path}: expected {type_expr}, got {value!r}"]
        if type_expr not in self.types:
            return []  # outside the subset: not checked
        entry = self.types[type_expr]
        if entry.get("subtypes"):
            return self.check(entry["subtypes"], value, path)
        return self._check_object(type_expr, entry, value, path)

    def _check_object(self, name: str, entry: dict, value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected {name} object, got {type(value).__name__}"]
        known = {f["name"]: f for f in entry.get("fields", [])}
        found = [f"{path}: unknown field {key!r} for {name}" for key in value if key not in known]
        found += [
            f"{path}: {name}.{key} is required"
            for key, spec in known.items()
            if spec["required"] and key not in value
        ]
        for key, item in value.items():
            if key in known:
                found += self.check(known[key]["types"], item, f"{path}.{key}")
        return found

    def fill_required(self, type_name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` plus False/0 for the required flags it lacks (e.g. an admin's can_* rights)."""
        for spec in self.types[type_name].get("fields", []):
            if spec["required"] and spec["name"] not in obj:
                if spec["types"] == ["Boolean"]:
                    obj[spec["name"]] = False
                elif spec["types"] == ["Integer"]:
                    obj[spec["name"]] = 0
        return obj


def _primitive_ok(type_name: str, value: Any) -> bool:
    if type_name == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "String":
        return isinstance(value, str)
    if type_name in ("Boolean", "True"):
        return isinstance(value, bool)
    return isinstance(value, Upload | str)  # InputFile: an upload or a file_id / URL


def validate_object(type_name: str, value: Any) -> list[str]:
    """Problems of a response object (``Message``, ``User``, ...) against the spec subset."""
    return SpecChecker(load_spec())._check_one(type_name, value, type_name)


# --------------------------------------------------------------------------------------------
# Flood limits.
# --------------------------------------------------------------------------------------------


class FloodControl:
    """Telegram's per-chat and global sending limits (Bot FAQ), answered with retry_after."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        burst: int,
        per_second: float,
        group_per_minute: int,
        global_per_second: int,
    ):
        self.clock = clock
        self.burst = burst
        self.per_second = per_second
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second
        self.buckets: dict[int, tuple[float, float]] = {}  # private chat -> (tokens, at)
        self.group_sends: dict[int, deque[float]] = {}
        self.all_sends: deque[float] = deque()

    def admit(self, chat_id: int, private: bool) -> None:
        """Count one message to ``chat_id``, or raise a 429 if a limit is used up."""
        now = self.clock()
        waits = [_window_wait(self.all_sends, now, 1.0, self.global_per_second)]
        if private:
            tokens = self._tokens(chat_id, now)
            waits.append(max(0.0, (1 - tokens) / self.per_second))
        else:
            sends = self.group_sends.setdefault(chat_id, deque())
            waits.append(_window_wait(sends, now, 60.0, self.group_per_minute))
        wait = max(waits)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
        self.all_sends.append(now)
        if private:
            self.buckets[chat_id] = (self._tokens(chat_id, now) - 1, now)
        else:
            self.group_sends[chat_id].append(now)

    def _tokens(self, chat_id: int, now: float) -> float:
        tokens, at = self.buckets.get(chat_id, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_second)


def _window_wait(sends: deque[float], now: float, window: float, limit: int) -> float:
    """Seconds until a sliding ``window`` holds fewer than ``limit`` sends (0 if it does)."""
    while sends and sends[0] <= now - window:
        sends.popleft()
    if len(sends) < limit:
        return 0.0
    return sends[len(sends) - limit] + window - now


# --------------------------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------------------------


@dataclass
class Chat:
    id: int
    type: str  # private | group | supergroup | channel
    title: str | None = None
    first_name: str | None = None
    username: str | None = None
    bot_status: str = "member"  # member | left | kicked | migrated
    migrate_to: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.first_name or "User"
        else:
            data["title"] = self.title or f"Chat {self.id}"
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class _Injected:
    error: ApiError
    count: int


@dataclass
class _Poll:
    """The getUpdates call being served; a newer one ends it with 409 like Telegram."""

    terminated: bool = False


class FakeBotApi:
    """The fake server; see the module docstring. Build one per test.

    ``burst``/``per_second``: a private chat takes ``burst`` messages at once, then
    ``per_second``; ``group_per_minute`` per group, ``global_per_second`` for the whole bot.
    ``rate_limits=False`` turns all of them off (benchmarks). ``clock`` drives the limits.
    """

    def __init__(
        self,
        *,
        token: str = "123456:TEST-token",
        rate_limits: bool = True,
        burst: int = 3,
        per_second: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
        strict_html: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.rate_limits = rate_limits
        self.strict_html = strict_html
        self.port = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method, params), in order
        self.spec_violations: list[str] = []
        self.answered_callbacks: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] | None = None  # url, secret_token, ... while one is set
        self.files: dict[str, bytes] = {}  # file_id -> uploaded bytes
        self.chats: dict[int, Chat] = {}
        self._spec = SpecChecker(load_spec())
        self._flood = FloodControl(
            clock,
            burst=burst,
            per_second=per_second,
            group_per_minute=group_per_minute,
            global_per_second=global_per_second,
        )
        self._runner: web.AppRunner | None = None
        self._users: dict[int, dict[str, Any]] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._bot_messages: list[tuple[int, int]] = []
        self._last_message_id: dict[int, int] = {}
        self._updates: list[dict[str, Any]] = []  # pending, oldest first
        self._update_ids = itertools.count(1000)
        self._delivered_up_to = 0
        self._added_up_to = 0
        self._allowed_updates: list[str] | None = None
        self._wakeup = asyncio.Event()
        self._poll: _Poll | None = None
        self._open_callbacks: set[str] = set()
        self._callback_ids = itertools.count(7_000_000_000_001)
        self._file_ids = itertools.count(1)
        self._injected: dict[str, list[_Injected]] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._answer_delay = 0.0  # slow()
        self._silent_until = 0.0  # silent(), on the loop's clock
        self._in_flight = 0
        self._last_activity = 0.0
        self._stopping = False
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "leaveChat": self._leave_chat,
        }
        # Telegram treats method names case-insensitively.
        self._by_lower_name = {name.lower(): name for name in self._handlers}

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates added and not yet confirmed by a later getUpdates (nor dropped as unwanted)."""
        return self._updates

    @property
    def in_flight(self) -> int:
        """Calls being answered now, getUpdates' long polls aside."""
        return self._in_flight

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> FakeBotApi:
        await self._listen(0)
        self.port = self._runner.addresses[0][1]
        self._last_activity = asyncio.get_running_loop().time()
        return self

    async def _listen(self, port: int) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)  # photos are up to 10 MB
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()

    async def stop(self) -> None:
        self._stopping = True
        self._wake_pollers()  # a long poll in progress returns now, not after its timeout
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._reply(ApiError(401, "Unauthorized"))
        name = request.match_info["method"]
        method = self._by_lower_name.get(name.lower())
        try:
            raw = await _read_params(request)
        except ApiError as error:
            self.requests.append((method or name, {}))
            return self._reply(error)
        if method is None:
            self.requests.append((name, raw))
            return self._reply(ApiError(404, "Not Found: method not found"))
        params = self._spec.coerce(method, raw)
        self.requests.append((method, params))
        self.spec_violations += self._spec.problems(method, params)
        background = method == "getUpdates"  # a long poll is no sign the bot is busy
        if not background:
            self._in_flight += 1
        try:
            if method in self._gates:
                await self._gates[method].wait()
            silence = self._silent_until - asyncio.get_running_loop().time()
            if not background and silence > 0:
                await asyncio.sleep(silence)
                request.transport.close()  # lost on the way: never carried out, never answered
                return web.Response(status=500)
            self._check_required(method, params)
            self._raise_injected(method)
            answer = self._reply(await self._handlers[method](params))
            if not background and self._answer_delay:
                await asyncio.sleep(self._answer_delay)  # carried out, answered late
            return answer
        except ApiError as error:
            return self._reply(error)
        finally:
            if not background:
                self._in_flight -= 1
                self._touch()

    @staticmethod
    def _reply(outcome: Any) -> web.Response:
        if isinstance(outcome, ApiError):
            return web.json_response(outcome.body(), status=outcome.error_code)
        return web.json_response({"ok": True, "result": outcome})

    def _check_required(self, method: str, params: dict[str, Any]) -> None:
        for name in self._spec.missing_required(method, params):
            if name == "chat_id":
                raise bad_request("chat_id is empty")
            if name == "text":
                raise bad_request("message text is empty")
            raise bad_request(f'parameter "{name}" is required')

    def _raise_injected(self, method: str) -> None:
        queue = self._injected.get(method)
        if not queue:
            return
        injected = queue[0]
        injected.count -= 1
        if injected.count <= 0:
            queue.pop(0)
        raise injected.error

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    # -- errors on demand ----------------------------------------------------------------------

    def inject_error(
        self,
        method: str,
        error_code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with this answer."""
        error = ApiError(error_code, description, parameters)
        self._injected.setdefault(method, []).append(_Injected(error, count))

    def clear_errors(self, method: str) -> None:
        """Forget the errors still injected for ``method``: Telegram is back."""
        self._injected.pop(method, None)

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1) -> None:
        """Make the next call of ``method`` fail: 429 with ``retry_after``, or ``status``."""
        if status == 429:
            self.inject_error(
                method,
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )
            return
        words = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}
        self.inject_error(method, status, words.get(status, "Bad Gateway"))

    def slow(self, seconds: float) -> None:
        """Carry out every call but getUpdates at once and answer it ``seconds`` later, as a
        struggling Telegram does (0: answers on time again)."""
        self._answer_delay = seconds

    def silent(self, seconds: float) -> None:
        """For the next ``seconds``, calls other than getUpdates are neither carried out nor
        answered: each is held until the silence ends, then its connection is closed."""
        self._silent_until = asyncio.get_running_loop().time() + seconds

    async def refuse_connections(self) -> None:
        """Stop listening: connections are refused until ``accept_connections``."""
        await self._runner.cleanup()

    async def accept_connections(self) -> None:
        """Listen again, on the same port."""
        await self._listen(self.port)

    def hold(self, method: str) -> asyncio.Event:
        """Keep every call of ``method`` waiting until the returned event is set."""
        self._gates[method] = asyncio.Event()
        return self._gates[method]

    # -- getMe, updates, webhook ---------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        if "allowed_updates" in params:
            self._allowed_updates = params["allowed_updates"] or None
        self._confirm(params.get("offset"))
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if self._poll is not None:
            self._poll.terminated = True
            self._wake_pollers()
        poll = self._poll = _Poll()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                batch = self._deliverable(limit)
                remaining = deadline - loop.time()
                if batch or remaining <= 0 or self._stopping:
                    break
                wakeup = self._wakeup
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), remaining)
                if poll.terminated:
                    raise ApiError(409, POLL_CONFLICT)
        finally:
            if self._poll is poll:
                self._poll = None
        if batch:
            self._delivered_up_to = max(self._delivered_up_to, batch[-1]["update_id"])
            self._touch()
        return copy.deepcopy(batch)

    def _confirm(self, offset: int | None) -> None:
        """Forget updates below ``offset``; a negative one keeps only the last -offset."""
        if offset is None:
            return
        if offset < 0:
            del self._updates[: max(len(self._updates) + offset, 0)]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        wanted = set(self._allowed_updates) if self._allowed_updates else None
        kept = []
        for update in self._updates:
            kind = _update_kind(update)
            if kind in wanted if wanted else kind not in NOT_DEFAULT_UPDATES:
                kept.append(update)
            else:
                # Telegram never stores updates the bot did not ask for.
                self._delivered_up_to = max(self._delivered_up_to, update["update_id"])
        self._updates = kept
        return kept[:limit]

    def _wake_pollers(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = params["url"]
        if url == "":
            return await self._delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if (parts.port or 443) not in WEBHOOK_PORTS:
            raise bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        if "allowed_updates" in params:
            self._allowed_updates = params["allowed_updates"] or None
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": params.get("max_connections", 40),
            "ip_address": params.get("ip_address"),
        }
        self._wake_pollers()
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self.webhook = None
        return True

    def _drop_pending(self) -> None:
        if self._updates:
            self._delivered_up_to = max(self._delivered_up_to, self._updates[-1]["update_id"])
        self._updates = []

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["ip_address"]:
                info["ip_address"] = self.webhook["ip_address"]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    # -- commands ------------------------------------------------------------------------------

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        """(scope, language): the scope type, with the chat (and user) for chat scopes."""
        scope = params.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        key = str(scope["type"])
        if "chat_id" in scope:
            key += f":{scope['chat_id']}"
        if "user_id" in scope:
            key += f":{scope['user_id']}"
        return key, params.get("language_code") or ""

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params["commands"]
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "").strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        if commands:
            self.commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self.commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    # -- chats ---------------------------------------------------------------------------------

    def register_chat(
        self, chat_id: int, type: str, title: str | None = None, *, username: str | None = None
    ) -> dict[str, Any]:
        """Make a chat known (the bot is a member); returns its Chat object."""
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = Chat(chat_id, type)
        chat.type = type
        if type == "private":
            chat.first_name = title or chat.first_name
        else:
            chat.title = title or chat.title
        chat.username = username or chat.username
        return chat.as_dict()

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What getChatMember answers for this user: creator, administrator, member, ..."""
        assert status in MEMBER_TYPES, status
        self._members[(chat_id, user_id)] = status

    def _chat(self, chat_id: Any) -> Chat:
        """The chat a call names, or the 400 Telegram gives for an unknown one."""
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self.chats.values():
                if chat.username and chat.username.lower() == chat_id[1:].lower():
                    return chat
            raise bad_request("chat not found")
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        chat = self.chats.get(chat_id)
        if chat is None:
            if chat_id < 0:
                raise bad_request("chat not found")
            # A user the bot never heard of: let it through as a private chat.
            chat = self.chats[chat_id] = Chat(chat_id, "private")
        return chat

    def _writable_chat(self, chat_id: Any) -> Chat:
        """The chat, if the bot may still post in it; else Telegram's 400/403."""
        chat = self._chat(chat_id)
        kind = "channel" if chat.type == "channel" else f"{chat.type} chat"
        if chat.bot_status == "migrated":
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrate_to},
            )
        if chat.bot_status == "kicked":
            if chat.type == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind}")
        if chat.bot_status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind}")
        return chat

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        return {
            **chat.as_dict(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        user_id = params["user_id"]
        if user_id == BOT_ID:
            status = {"migrated": "left"}.get(chat.bot_status, chat.bot_status)
            user = dict(BOT_USER)
        else:
            default = "member" if chat.type == "private" and chat.id == user_id else "left"
            status = self._members.get((chat.id, user_id), default)
            user = self._user(user_id)
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            member.update(can_manage_chat=True, can_delete_messages=True, can_invite_users=True)
        if status in ("kicked", "restricted"):
            member["until_date"] = 0
        return self._spec.fill_required(MEMBER_TYPES[status], member)

    async def _leave_chat(self, params: dict[str, Any]) -> bool:
        chat = self._writable_chat(params["chat_id"])
        if chat.type == "private":
            raise bad_request("chat member status can't be changed in private chats")
        self._bot_status_update(chat, "left", by=BOT_USER)
        return True

    # -- messages ------------------------------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        # One sequence per chat, shared by the bot's and the users' messages, as in Telegram.
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _store_message(self, chat: Chat, sender: dict[str, Any] | None, **content: Any) -> dict:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat.id),
            "date": int(time.time()),
            "chat": chat.as_dict(),
        }
        if sender is not None:
            message["from"] = dict(sender)
        message.update({k: v for k, v in content.items() if v is not None})
        self._messages[(chat.id, message["message_id"])] = message
        return message

    def _formatted(
        self, params: dict[str, Any], text_key: str, entities_key: str, limit: int
    ) -> tuple[str, list[dict[str, Any]] | None]:
        """The visible text and entities of ``params[text_key]`` after ``parse_mode``."""
        raw = params.get(text_key) or ""
        parse_mode = params.get("parse_mode")
        entities = params.get(entities_key)
        if parse_mode:
            if str(parse_mode).lower() != "html":
                # The fake only implements HTML; say so rather than store unparsed markup.
                raise bad_request(f"unsupported parse_mode {parse_mode!r} (the fake knows HTML)")
            try:
                raw, entities = parse_html(raw, strict=self.strict_html)
            except HtmlParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        if text_key == "text" and not raw.strip():
            raise bad_request("message text is empty")
        if utf16_len(raw) > limit:
            raise bad_request(
                "message is too long" if text_key == "text" else "message caption is too long"
            )
        return raw, entities or None

    def _check_markup(self, markup: Any) -> dict[str, Any] | None:
        """The reply markup, after Telegram's inline keyboard checks."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup  # reply keyboards, keyboard removal, force reply: not checked
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request(
                'can\'t parse inline keyboard button: field "inline_keyboard" '
                "must be an Array of Arrays"
            )
        buttons = [button for row in rows for button in row]
        if len(buttons) > MAX_BUTTONS:
            raise bad_request("REPLY_MARKUP_TOO_LONG")
        for button in buttons:
            _check_inline_button(button)
        return markup

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params["chat_id"])
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT)
        markup = self._check_markup(params.get("reply_markup"))
        self._admit(chat)
        return self._post(chat, text=text, entities=entities, reply_markup=markup)

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._writable_chat(params["chat_id"])
        caption, entities = self._formatted(params, "caption", "caption_entities", MAX_CAPTION)
        markup = self._check_markup(params.get("reply_markup"))
        self._admit(chat)
        file_id, size = self._photo_file(params)
        # The fake does not decode images, so every photo reports one size of 1280x720.
        photo = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "width": 1280,
            "height": 720,
            "file_size": size,
        }
        return self._post(
            chat,
            photo=[photo],
            caption=caption or None,
            caption_entities=entities,
            reply_markup=markup,
        )

    def _post(self, chat: Chat, **content: Any) -> dict[str, Any]:
        """Store a message from the bot; returns the Message object to answer with."""
        message = self._store_message(chat, BOT_USER, **content)
        self._bot_messages.append((chat.id, message["message_id"]))
        return copy.deepcopy(message)

    def _photo_file(self, params: dict[str, Any]) -> tuple[str, int]:
        """Store an uploaded photo (or resolve a file_id / URL); returns (file_id, size)."""
        photo = params["photo"]
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo.removeprefix("attach://"))
        if isinstance(photo, Upload):
            if not photo.data:
                raise bad_request("file must be non-empty")
            file_id = f"AgACfake{next(self._file_ids)}"
            self.files[file_id] = photo.data
            return file_id, len(photo.data)
        if isinstance(photo, str) and photo in self.files:
            return photo, len(self.files[photo])
        if isinstance(photo, str) and photo.startswith(("http://", "https://")):
            file_id = f"AgACfake{next(self._file_ids)}"
            self.files[file_id] = b""  # Telegram would download it; the fake cannot
            return file_id, 0
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _admit(self, chat: Chat) -> None:
        if self.rate_limits:
            self._flood.admit(chat.id, chat.type == "private")

    def _message_to_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake")
        if params.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        if params.get("message_id") in (None, ""):
            raise bad_request("message identifier is not specified")
        chat = self._chat(params["chat_id"])
        message = self._messages.get((chat.id, params["message_id"]))
        if message is None:
            raise bad_request("message to edit not found")
        if message.get("from", {}).get("id") != BOT_ID:
            raise bad_request("message can't be edited")
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message_to_edit(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT)
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(message, text=text, entities=entities, reply_markup=markup)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message_to_edit(params)
        markup = self._check_markup(params.get("reply_markup"))
        return self._apply_edit(message, reply_markup=markup)

    def _apply_edit(self, message: dict[str, Any], **changes: Any) -> dict[str, Any]:
        # Leaving reply_markup out of an edit removes the keyboard, as Telegram does.
        if all(message.get(key) == value for key, value in changes.items()):
            raise bad_request(NOT_MODIFIED)
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = str(params["callback_query_id"])
        if query_id not in self._open_callbacks:
            raise bad_request(QUERY_TOO_OLD)
        self._open_callbacks.discard(query_id)
        answer = {"callback_query_id": query_id}
        for key in ("text", "show_alert", "url", "cache_time"):
            if key in params:
                answer[key] = params[key]
        self.answered_callbacks.append(answer)
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._writable_chat(params["chat_id"])
        if params["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # -- test side: updates --------------------------------------------------------------------

    def add_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (an update_id is assigned if missing)."""
        update = copy.deepcopy(update)
        if "update_id" not in update:
            update["update_id"] = next(self._update_ids)
        else:
            self._update_ids = itertools.count(max(update["update_id"] + 1, next(self._update_ids)))
        self._updates.append(update)
        self._added_up_to = max(self._added_up_to, update["update_id"])
        self._wake_pollers()
        return update["update_id"]

    def _user(self, user_id: int, **details: Any) -> dict[str, Any]:
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "User"}
        )
        user.update({k: v for k, v in details.items() if v is not None})
        return dict(user)

    def _user_message(self, chat: Chat, user: dict[str, Any], text: str) -> dict[str, Any]:
        entities = None
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        self._members.setdefault((chat.id, user["id"]), "member")
        return self._store_message(chat, user, text=text, entities=entities)

    def user_message(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Ann",
        language_code: str = "en",
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> int:
        """A message from a user (by default in the private chat with the bot)."""
        user = self._user(user_id, first_name=first_name, language_code=language_code)
        chat_id = user_id if chat_id is None else chat_id
        if chat_type == "private":
            self.register_chat(chat_id, "private", first_name)
        elif chat_id not in self.chats:
            self.register_chat(chat_id, chat_type)
        message = self._user_message(self.chats[chat_id], user, text)
        return self.add_update({"message": copy.deepcopy(message)})

    def group_message(self, chat_id: int, user_id: int, text: str, chat_type: str = "group") -> int:
        return self.user_message(user_id, text, chat_id=chat_id, chat_type=chat_type)

    def edited_message(
        self, user_id: int, message_id: int, text: str, *, chat_id: int | None = None
    ) -> int:
        """The user edits one of their earlier messages."""
        chat_id = user_id if chat_id is None else chat_id
        message = self._messages[(chat_id, message_id)]
        assert message.get("from", {}).get("id") == user_id, "not that user's message"
        message["text"] = text
        message["edit_date"] = int(time.time())
        return self.add_update({"edited_message": copy.deepcopy(message)})

    def channel_post(self, chat_id: int, text: str, *, title: str = "Channel") -> int:
        if chat_id not in self.chats:
            self.register_chat(chat_id, "channel", title)
        chat = self.chats[chat_id]
        message = self._store_message(chat, None, sender_chat=chat.as_dict(), text=text)
        return self.add_update({"channel_post": copy.deepcopy(message)})

    def callback(self, user_id: int, data: str, message_id: int, chat_id: int | None = None) -> int:
        """The user presses a button with ``data`` under the bot's message ``message_id``."""
        chat_id = user_id if chat_id is None else chat_id
        message = self._messages.get((chat_id, message_id))
        if message is None or message.get("from", {}).get("id") != BOT_ID:
            raise KeyError(f"the bot sent no message {message_id} in chat {chat_id}")
        query_id = str(next(self._callback_ids))
        self._open_callbacks.add(query_id)
        query = {
            "id": query_id,
            "from": self._user(user_id),
            "message": copy.deepcopy(message),
            "chat_instance": str(-abs(chat_id) * 7919 % 10**12),
            "data": data,
        }
        return self.add_update({"callback_query": query})

    def migrate_group(self, old_chat_id: int, new_chat_id: int, by_user_id: int = 1) -> int:
        """The group becomes a supergroup: both service messages, old chat marked migrated.

        Returns the update_id of the message in the old chat (migrate_to_chat_id).
        """
        old = self._chat(old_chat_id)
        self.register_chat(new_chat_id, "supergroup", old.title)
        new = self.chats[new_chat_id]
        user = self._user(by_user_id)
        to_message = self._store_message(old, user, migrate_to_chat_id=new_chat_id)
        from_message = self._store_message(
            new, user, sender_chat=new.as_dict(), migrate_from_chat_id=old_chat_id
        )
        old.bot_status, old.migrate_to = "migrated", new_chat_id
        update_id = self.add_update({"message": copy.deepcopy(to_message)})
        self.add_update({"message": copy.deepcopy(from_message)})
        return update_id

    def bot_removed(self, chat_id: int, by_user_id: int, status: str = "kicked") -> int:
        """The bot is removed from the chat (``kicked`` or ``left``); in a private chat,
        ``kicked`` means the user blocked it. Adds the my_chat_member update."""
        assert status in ("kicked", "left"), status
        chat = self._chat(chat_id)
        return self._bot_status_update(chat, status, by=self._user(by_user_id))

    def _bot_status_update(self, chat: Chat, status: str, *, by: dict[str, Any]) -> int:
        old_status = "member" if chat.bot_status == "migrated" else chat.bot_status
        chat.bot_status = status
        update = {
            "my_chat_member": {
                "chat": chat.as_dict(),
                "from": dict(by),
                "date": int(time.time()),
                "old_chat_member": _bot_member(old_status),
                "new_chat_member": _bot_member(status),
            }
        }
        return self.add_update(update)

    async def post_webhook(
        self, url: str, update: dict[str, Any], secret_token: str | None = None
    ) -> int:
        """POST an update to a bot's webhook as Telegram would; returns the HTTP status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret_token} if secret_token else {}
        if "update_id" not in update:
            update = {**update, "update_id": next(self._update_ids)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    # -- test side: inspection -----------------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The bot's messages (as they are now, after edits), oldest first."""
        return [
            copy.deepcopy(self._messages[key])
            for key in self._bot_messages
            if chat_id is None or key[0] == chat_id
        ]

    def last_text(self, chat_id: int) -> str | None:
        """Text (or caption) of the bot's latest message in the chat; None if none."""
        messages = self.sent(chat_id)
        if not messages:
            return None
        return messages[-1].get("text", messages[-1].get("caption"))

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Parameters of every call of ``method``, in order."""
        return [params for name, params in self.requests if name == method]

    def dump(self, last: int = 15) -> str:
        """Recent requests and the bot's messages, for failure messages."""
        lines = [f"last {last} of {len(self.requests)} requests:"]
        lines += [f"  {method} {_short(params)}" for method, params in self.requests[-last:]]
        lines.append("messages sent by the bot:")
        lines += [
            f"  chat {m['chat']['id']} #{m['message_id']}: {m.get('text', m.get('caption'))!r}"
            for m in self.sent()
        ]
        lines.append(f"pending updates: {[u['update_id'] for u in self._updates]}")
        return "\n".join(lines)

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 5.0, *, interval: float = 0.01
    ) -> None:
        """Wait until ``predicate()`` is true; AssertionError with a dump after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                raise AssertionError(f"condition not met within {timeout} s\n{self.dump()}")
            await asyncio.sleep(interval)

    async def wait_until_idle(self, quiet: float = 0.2, timeout: float = 5.0) -> bool:
        """Wait until every added update was fetched and no call (other than getUpdates)
        arrived or ran for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()

        def idle() -> bool:
            return (
                self._delivered_up_to >= self._added_up_to
                and self._in_flight == 0
                and loop.time() - self._last_activity >= quiet
            )

        await self.wait_for(idle, timeout)
        return True


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if not button.get("text"):
        raise bad_request("BUTTON_TEXT_INVALID")
    if "callback_data" in button:
        size = len(str(button["callback_data"]).encode("utf-8"))
        if not 1 <= size <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
    actions = set(button) - {"text", "icon_custom_emoji_id", "style"}
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )


def _update_kind(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


def _short(params: dict[str, Any], width: int = 160) -> str:
    text = repr(params)
    return text if len(text) <= width else text[: width - 3] + "..."


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters from the query string and a JSON, urlencoded or multipart body."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(data, dict):
                raise bad_request("can't parse JSON object")
            params.update(data)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = Upload(value.filename, value.content_type, value.file.read())
            else:
                params[key] = value
    return params


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    """A started FakeBotApi, stopped after the test."""
    async with FakeBotApi() as api:
        yield api


def _bot_member(status: str) -> dict[str, Any]:
    """The bot as a ChatMember; a banned ("kicked") one needs until_date (0: for ever)."""
    member: dict[str, Any] = {"status": status, "user": dict(BOT_USER)}
    if status == "kicked":
        member["until_date"] = 0
    return member
