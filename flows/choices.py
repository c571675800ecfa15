"""Typed text matched to a field's options the way reps write it.

An option is named by its id, any of its labels, any of its playbook ``aliases`` or (for a
single choice) its number. Beyond an exact name:

* a name followed by more words keeps those words as evidence: ``其他：制造业`` is "other", with
  ``制造业`` kept; ``金融，城商行`` is finance;
* a phrase holding exactly one option's name picks it: ``电信运营商`` is telecom. Two different
  options in one phrase are not guessed between;
* a multiple choice splits on commas, 、, ``和``, ``或者``, ``and``, ``or`` and spaces; a piece
  naming no option beside pieces that do is kept as evidence and, where the field has an
  "other" option, ticks it (``要信创，达梦或者oceanbase``).

Matching is on folded text (``reading.fold``); Latin names match whole words only, so "other"
is not found in "mother".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from flows.playbook import Option
from flows.reading import fold, match_option, unfolded_index

OTHER = "other"
# Between a name and the words that follow it ("其他：制造业", "Finance - a city bank").
_AFTER_NAME = re.compile(r"[\s,，:：;；、\-–—(（]+")
# Between the items of a multiple choice.
_ITEMS = re.compile(
    r"\s*(?:[,，;；、/\n+]|(?<![a-z])(?:and|or|plus)(?![a-z])|或者|还有|以及|和|或|跟)\s*"
)


@dataclass(frozen=True)
class Picked:
    ids: list[str]  # option ids, in the playbook's order
    evidence: str | None  # the rep's words beyond the names, if any
    unknown: str | None = None  # a piece naming no option, where the field has no "other"


def names(options: Sequence[Option]) -> list[tuple[str, list[str]]]:
    """``(id, folded names)`` per option: id, labels and aliases."""
    return [
        (o.id, sorted({fold(n) for n in (o.id, *o.label.values(), *o.aliases)}, key=len))
        for o in options
    ]


def pick_one(text: str, options: Sequence[Option]) -> tuple[str, str | None] | None:
    """The option a single-choice answer names and its evidence; None if it names none (or
    several, which is not guessed between)."""
    choices = names(options)
    folded = fold(text)
    found = match_option(folded, choices)
    if found is not None:
        return found, None
    lead = _leading_name(folded, choices)
    if lead is not None:
        option_id, rest = lead
        if any(other != option_id for other in _contained(rest, choices)):
            return None  # "价格、售后服务" names two: not one choice
        text = text.strip()
        return option_id, text[unfolded_index(text, len(folded) - len(rest)) :].strip()
    contained = _contained(folded, choices)
    return (contained[0], text.strip()) if len(contained) == 1 else None


def pick_many(text: str, options: Sequence[Option]) -> Picked:
    """The options a multiple-choice answer names, with what else it says."""
    choices = names(options)
    has_other = any(o.id == OTHER for o in options)
    picked: set[str] = set()
    unnamed: list[str] = []
    exact = True
    for piece in _pieces(fold(text), choices):
        found = match_option(piece, choices, by_number=True)
        if found is not None:
            picked.add(found)
            continue
        exact = False
        contained = _contained(piece, choices)
        picked.update(contained)
        if not contained:
            unnamed.append(piece)
    # Words naming no option tick "other" only beside a named one: text that names nothing
    # at all is asked again rather than saved as "other".
    if unnamed and (not has_other or not picked):
        return Picked([], None, unknown=unnamed[0])
    if unnamed:
        picked.add(OTHER)
    ordered = [o.id for o in options if o.id in picked]
    return Picked(ordered, None if exact else text.strip())


def _pieces(folded: str, choices: list[tuple[str, list[str]]]) -> list[str]:
    """Items between separators; a piece that is not a name is split on spaces ("1 3"),
    unless that leaves words no option names (then it stays one phrase)."""
    pieces: list[str] = []
    for piece in (p.strip() for p in _ITEMS.split(folded)):
        if not piece:
            continue
        words = piece.split()
        known = [w for w in words if match_option(w, choices) is not None]
        if match_option(piece, choices) is None and len(words) > 1 and len(known) == len(words):
            pieces.extend(words)
        else:
            pieces.append(piece)
    return pieces


def _leading_name(folded: str, choices: list[tuple[str, list[str]]]) -> tuple[str, str] | None:
    """An option's name at the start, then a separator and more words."""
    best: tuple[int, str, str] | None = None
    for option_id, option_names in choices:
        for name in option_names:
            if not name or not folded.startswith(name):
                continue
            after = _AFTER_NAME.match(folded, len(name))
            if after and after.end() < len(folded) and (best is None or len(name) > best[0]):
                best = (len(name), option_id, folded[after.end() :])
    return None if best is None else (best[1], best[2])


def _contained(folded: str, choices: list[tuple[str, list[str]]]) -> list[str]:
    """The ids of options whose name occurs in the text (Latin names as whole words). A name
    found inside a longer name of another option does not count: in ``不好用`` only "works
    badly" (不好用) is named, not "works well" (好用)."""
    spans = [
        (match.start(), match.end(), option_id)
        for option_id, option_names in choices
        for name in option_names
        if len(name) >= 2
        for match in _occurrences(name, folded)
    ]
    inside = {
        (start, end, option_id)
        for start, end, option_id in spans
        for other_start, other_end, other_id in spans
        if other_id != option_id
        and other_start <= start
        and end <= other_end
        and (other_end - other_start) > (end - start)
    }
    found = {option_id for span in spans if span not in inside for option_id in [span[2]]}
    return [option_id for option_id, _ in choices if option_id in found]


def _occurrences(name: str, folded: str) -> list[re.Match[str]]:
    if name.isascii():
        # Not after a dot either: "t.finance" is a button's payload, not a word.
        return list(re.finditer(rf"(?<![a-z0-9_.]){re.escape(name)}(?![a-z0-9_])", folded))
    return list(re.finditer(re.escape(name), folded))
