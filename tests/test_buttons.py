"""Button data: each kind's text round-trips, fits Telegram's 64 bytes, and keeps the form that
messages already in people's chats carry; anything else decodes to None."""

from __future__ import annotations

import pytest

from bot.dialog import buttons
from bot.dialog.buttons import (
    AnswerNudge,
    AnswerQuestion,
    AskException,
    ConfirmMove,
    DecideRequest,
    EditField,
    ForceMove,
    NoteCard,
    NoteDeal,
    PickDeal,
    PickLanguage,
    ResumeDeal,
    decode,
)

BIG = 10**15 - 1  # the largest id a button takes
LONGEST_ID = "f" * 32  # the playbook's ids are at most 32 characters

# The texts sent before the codec existed: still in people's chats, so they must decode as is.
SENT_BEFORE = {
    "q:3:budget": AnswerQuestion(3, "budget"),
    "q:12:skip": AnswerQuestion(12, "skip"),
    "d:u:41": PickDeal("u", 41),
    "a:41:1:2": ConfirmMove(41, 1, 2),
    "e:41:customer_background": EditField(41, "customer_background"),
    "e:41:@0": EditField(41, "@0"),
    "l:zh": PickLanguage("zh"),
    "f:41:1:6": ForceMove(41, 1, 6),
    "x:41:1:2": AskException(41, 1, 2),
    "r:9:1": DecideRequest(9, True),
    "r:9:0": DecideRequest(9, False),
    "n:77:x": AnswerNudge(77, "x"),
    "n:77:7": AnswerNudge(77, "7"),
    "p:41": ResumeDeal(41),
    "c:7:f:2": NoteCard(7, "f", 2),
    "m:7:41": NoteDeal(7, 41),
    "m:7:0": NoteDeal(7, 0),
}


@pytest.mark.parametrize(("text", "value"), SENT_BEFORE.items())
def test_texts_already_sent_decode_and_encode_the_same(text, value):
    assert decode(text) == value
    assert value.encode() == text


def test_every_kind_is_known_by_its_own_tag_and_fits_64_bytes_at_its_largest():
    largest = [
        AnswerQuestion(BIG, LONGEST_ID),
        PickDeal("u", BIG),
        ConfirmMove(BIG, 99, 99),
        EditField(BIG, LONGEST_ID),
        PickLanguage("en"),
        ForceMove(BIG, 99, 99),
        AskException(BIG, 99, 99),
        DecideRequest(BIG, True),
        AnswerNudge(BIG, "x"),
        ResumeDeal(BIG),
        NoteCard(BIG, "s", BIG),
        NoteDeal(BIG, BIG),
    ]
    assert {type(value) for value in largest} == set(buttons.KINDS.values())
    for value in largest:
        text = value.encode()
        assert len(text.encode()) <= buttons.MAX_BYTES
        assert decode(text) == value


def test_data_over_64_bytes_is_refused_when_built():
    with pytest.raises(ValueError, match="64 bytes"):
        AnswerQuestion(1, "长" * 21).encode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "z:1",
        "q",
        "q:",
        "q:1",
        "q:1:",
        "q:1:a:b",
        "q:x:yes",
        "q:-1:yes",
        "q:²:yes",
        "q: 1:yes",
        "q:1234567890123456:yes",
        "a:1:0",
        "a:1:0:5:9",
        "r:1:2",
        "r:1:",
        "p:",
        "p:1:2",
        "d:u",
        "e:1:",
        "Q:1:yes",
    ],
)
def test_malformed_or_unknown_data_decodes_to_none(text):
    assert decode(text) is None
