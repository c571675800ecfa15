"""Translated interface strings, kept as TOML under ``flows/locales/<lang>/<topic>.toml``.

A key is ``topic.name`` (``parse.money_invalid`` lives in ``parse.toml``); values are
``str.format`` templates with named placeholders. Every language has the same keys and the same
placeholders (a test checks), so a missing translation is caught before a user sees it.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


@cache
def catalog(lang: str) -> dict[str, str]:
    """All strings of one language, keyed ``topic.name``."""
    strings: dict[str, str] = {}
    folder = resources.files("flows") / "locales" / lang
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            topic = entry.name.removesuffix(".toml")
            for name, text in tomllib.loads(entry.read_text(encoding="utf-8")).items():
                strings[f"{topic}.{name}"] = text
    return strings


def normalise_language(code: str | None) -> str:
    """Map a language code such as ``zh-hans`` or ``en-US`` onto a supported language."""
    base = (code or "").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


def t(lang: str, key: str, **params: Any) -> str:
    """The string ``key`` in ``lang`` with ``params`` filled in (falls back to the default)."""
    strings = catalog(normalise_language(lang))
    template = strings.get(key) or catalog(DEFAULT_LANGUAGE)[key]
    return template.format(**params) if params else template


def pick(text: dict[str, str], lang: str) -> str:
    """One language of a playbook text (any language when that one is missing)."""
    return text.get(lang) or text.get(DEFAULT_LANGUAGE) or next(iter(text.values()), "")
