"""The funnel chart drawn on a kept base (title and stage names drawn once) is pixel for pixel
the chart matplotlib draws whole, whatever was drawn on the base before."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image

from bot import chart
from bot.chart import FunnelRow, funnel_png

TITLE = {"zh": "销售漏斗", "en": "Sales funnel"}
STAGES = [
    {"zh": "潜在的商机", "en": "Potential opportunity"},
    {"zh": "需求确认", "en": "Needs confirmed"},
    {"zh": "商务谈判", "en": "Negotiation"},
    {"zh": "赢单", "en": "Won"},
]


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (chart.WIDTH_PX, chart.HEIGHT_PX)
        return np.asarray(image.convert("RGBA"))


def drawn_whole(rows: list[FunnelRow], lang: str) -> np.ndarray:
    """The same chart with every artist drawn by Figure.draw (no kept pixels)."""
    head, labels, font = chart._texts(rows, lang, TITLE)
    with chart._lock:
        base = chart._base(head, tuple(labels), font)
        artists: list = []
        try:
            chart._add_rows(base.fig, base.layout, rows, base.canvas.get_renderer(), artists)
            base.canvas.draw()
            return np.asarray(base.canvas.buffer_rgba()).copy()
        finally:
            for artist in artists:
                artist.remove()


def team(rng: random.Random) -> list[FunnelRow]:
    return [
        FunnelRow(label, rng.choice([0, 1, 7, 120, rng.randint(0, 5000)]), amount)
        for label in STAGES
        for amount in [rng.choice(["", f"¥{rng.randint(0, 10**9):,}.00", "¥" + "9" * 60])]
    ]


def test_charts_on_the_kept_base_are_the_whole_drawing() -> None:
    rng = random.Random(5)
    for n in range(12):
        rows = team(rng)
        lang = "en" if n % 2 else "zh"
        assert np.array_equal(
            decoded(funnel_png(rows, lang=lang, title=TITLE)), drawn_whole(rows, lang)
        )


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


def test_the_png_is_opaque_rgba() -> None:
    png = funnel_png(team(random.Random(7)), lang="en", title=TITLE)
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.mode) == ("PNG", "RGBA")
        image.verify()  # chunk CRCs and the compressed data
    assert (decoded(png)[:, :, 3] == 255).all()
