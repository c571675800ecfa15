"""The funnel chart drawn on a kept page (title and stage names drawn once per language):
the page is untouched where the rows are not, each row's bar, count and amount are drawn
where they belong, and the PNG decodes to exactly the pixels drawn."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from bot.dialog import chart
from bot.dialog.chart import FunnelRow, cjk_font, funnel_png

TITLE = {"zh": "销售漏斗", "en": "Sales funnel"}
STAGES = [
    {"zh": "潜在的商机", "en": "Potential opportunity"},
    {"zh": "需求确认", "en": "Needs confirmed"},
    {"zh": "商务谈判", "en": "Negotiation"},
    {"zh": "赢单", "en": "Won"},
]
WHITE = (255, 255, 255)


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (chart.WIDTH_PX, chart.HEIGHT_PX)
        return np.asarray(image.convert("RGB"))


def team(rng: random.Random) -> list[FunnelRow]:
    return [
        FunnelRow(label, rng.choice([0, 1, 7, 120, rng.randint(0, 5000)]), amount)
        for label in STAGES
        for amount in [rng.choice(["", f"¥{rng.randint(0, 10**9):,}.00", "¥" + "9" * 60])]
    ]


def row_box(rows: list[FunnelRow], i: int) -> tuple[int, int]:
    """Pixel rows (top, bottom) of stage ``i``'s bar."""
    layout = chart._layout(len(rows), None)
    y = (1 - layout.y(i)) * chart.HEIGHT_PX
    half = 0.36 * layout.pitch * chart.HEIGHT_PX
    return round(y - half), round(y + half)


def bar_colour(rows: list[FunnelRow], i: int) -> tuple[int, ...]:
    return chart._rgb(chart._colour(i, len(rows)))


def test_the_page_is_untouched_left_of_the_bars_and_above_them() -> None:
    rng = random.Random(5)
    for n in range(6):
        rows, lang = team(rng), "en" if n % 2 else "zh"
        pixels = decoded(funnel_png(rows, lang=lang, title=TITLE))
        head, labels, font = chart._texts(rows, lang, TITLE)
        page = np.asarray(chart._bases[(head, tuple(labels), font)].image)
        left = int(chart.WIDTH_PX * 0.30)
        assert np.array_equal(pixels[:, :left], page[:, :left])
        top, _ = row_box(rows, 0)
        assert np.array_equal(pixels[:top], page[:top])
        assert (page[:top] != 255).any() and (page[:, :left] != 255).any()  # title, names


def test_bars_are_as_wide_as_their_counts() -> None:
    rows = [
        FunnelRow(label, count, "") for label, count in zip(STAGES, [120, 60, 9, 0], strict=True)
    ]
    pixels = decoded(funnel_png(rows, lang="en", title=TITLE))
    span_px = 0.385 * chart.WIDTH_PX
    for i, row in enumerate(rows):
        top, _ = row_box(rows, i)
        line = pixels[top + 2]  # above the count drawn in the bar
        width = (line == bar_colour(rows, i)).all(axis=1).sum()
        assert abs(width - max(row.count / 120 * span_px, 3.6)) <= 2, (i, width)


def test_counts_and_amounts_are_drawn_in_their_row() -> None:
    rows = [FunnelRow(STAGES[0], 300, "¥1,250,000.00"), FunnelRow(STAGES[1], 2, "")]
    pixels = decoded(funnel_png(rows, lang="en", title=TITLE))
    amounts = int(chart.WIDTH_PX * 0.72) - 2
    wide_top, wide_bottom = row_box(rows, 0)
    wide = pixels[wide_top:wide_bottom]
    # The count of the wide bar in white inside it, its amount to the right.
    inside = (wide != bar_colour(rows, 0)).any(axis=2)[:, 300:600]
    assert 30 < inside.sum() < 2000
    assert (wide[:, amounts:].min(axis=2) < 128).sum() > 50
    # The narrow bar's count in ink beside it; no amount drawn.
    narrow_top, narrow_bottom = row_box(rows, 1)
    narrow = pixels[narrow_top:narrow_bottom]
    beside = narrow[:, int(chart.WIDTH_PX * 0.52) : amounts]
    assert (beside.min(axis=2) < 128).sum() > 20
    assert (narrow[:, amounts:] == WHITE).all()


def test_other_numbers_draw_another_chart_the_same_draw_the_same() -> None:
    rows = [FunnelRow(STAGES[0], 30, "¥1,250,000.00"), FunnelRow(STAGES[1], 7, "¥5.00")]
    first = funnel_png(rows, lang="en", title=TITLE)
    amount = [rows[0], FunnelRow(STAGES[1], 7, "¥6.00")]
    count = [rows[0], FunnelRow(STAGES[1], 8, "¥5.00")]
    assert funnel_png(amount, lang="en", title=TITLE) != first
    assert funnel_png(count, lang="en", title=TITLE) != first
    assert funnel_png(rows, lang="en", title=TITLE) == first


def test_chinese_in_an_amount_is_drawn_with_the_cjk_font() -> None:
    if cjk_font() is None:
        pytest.skip("no CJK font installed: apt-get install fonts-wqy-microhei")

    def amount_area(amount: str) -> np.ndarray:
        png = funnel_png([FunnelRow(STAGES[0], 3, amount)], lang="zh", title=TITLE)
        return decoded(png)[:, int(chart.WIDTH_PX * 0.72) :]

    yuan, other = amount_area("1,250 元"), amount_area("1,250 圆")
    assert (yuan.min(axis=2) < 128).sum() > 50
    # A missing glyph is drawn as the same empty box whatever the character.
    assert not np.array_equal(yuan, other)


def test_a_chart_leaves_nothing_behind_for_the_next() -> None:
    rng = random.Random(6)
    first, second = team(rng), team(rng)
    before = funnel_png(first, lang="en", title=TITLE)
    funnel_png(second, lang="en", title=TITLE)
    assert funnel_png(first, lang="en", title=TITLE) == before


def test_bases_are_kept_for_a_few_titles_only() -> None:
    for n in range(chart.MAX_BASES + 3):
        funnel_png([FunnelRow({"en": f"Stage {n}"}, n, "")], lang="en", title=TITLE)
    assert len(chart._bases) <= chart.MAX_BASES


def test_the_png_is_rgb_and_decodes_to_the_pixels_drawn() -> None:
    png = funnel_png(team(random.Random(7)), lang="en", title=TITLE)
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.mode) == ("PNG", "RGB")
        image.verify()  # chunk CRCs and the compressed data
    pixels = np.random.default_rng(8).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(chart._png(Image.fromarray(pixels)))) as image:
        assert np.array_equal(np.asarray(image), pixels)  # every row, byte for byte
