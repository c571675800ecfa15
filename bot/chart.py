"""The funnel chart of a manager's daily digest, as PNG bytes for Telegram's sendPhoto.

Rendered with matplotlib's Agg canvas on standalone ``Figure``s (no pyplot: no GUI, no global
figure registry). What charts share, the title and stage names, is drawn once per language and
kept; each chart then draws only its own bars and numbers on top. Chinese text needs a CJK font:
``cjk_font`` looks one up once per process; without one, Chinese charts fall back to the English
labels.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from matplotlib import font_manager
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from matplotlib.text import Text

log = logging.getLogger(__name__)

WIDTH_PX, HEIGHT_PX, DPI = 900, 600, 100

# Preferred CJK fonts, best first: (family name, file-name fragment), both compared lower-case
# with spaces, dashes and underscores removed.
CJK_FONTS = (
    ("WenQuanYi Micro Hei", "wqy-microhei"),
    ("WenQuanYi Zen Hei", "wqy-zenhei"),
    ("Noto Sans CJK SC", "NotoSansCJKsc"),
    ("Noto Sans SC", "NotoSansSC"),
    ("Noto Sans CJK", "NotoSansCJK"),
    ("Source Han Sans SC", "SourceHanSansSC"),
    ("Source Han Sans", "SourceHanSans"),
    ("Droid Sans Fallback", "DroidSansFallback"),
    ("AR PL UMing", "uming"),
    ("AR PL UKai", "ukai"),
    ("Noto Serif CJK SC", "NotoSerifCJKsc"),
    ("Noto Serif CJK", "NotoSerifCJK"),
    ("Source Han Serif", "SourceHanSerif"),
)
PROBE = "中文商机"  # a font must have these glyphs to count as a CJK font

BAR_DARK, BAR_LIGHT = (0.12, 0.31, 0.60), (0.55, 0.73, 0.90)  # top and bottom bar colours
INK, MUTED = "#1f2933", "#52606d"

_lock = threading.Lock()  # matplotlib's font caches are not thread-safe
_warned_no_cjk = False


@dataclass(frozen=True)
class FunnelRow:
    label: dict[str, str]  # stage name per language, e.g. {"zh": "潜在的商机", "en": "..."}
    count: int  # open deals in the stage
    amount: str  # already formatted weighted amount, e.g. "¥1,250,000.00" (may be "")


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch not in " -_")


def _has_cjk_glyphs(path: str) -> bool:
    try:
        font = font_manager.get_font(path)
        return all(font.get_char_index(ord(ch)) for ch in PROBE)
    except Exception:  # unreadable or unsupported file: not usable
        return False


def _rank(family: str, path: str) -> int | None:
    """Position of a font in ``CJK_FONTS`` (lower is better), or None if it is not one of them."""
    family, name = _key(family), _key(os.path.basename(path))
    for rank, (wanted_family, fragment) in enumerate(CJK_FONTS):
        if family.startswith(_key(wanted_family)) or _key(fragment) in name:
            return rank
    return None


def _best(candidates: list[tuple[str, str]]) -> str | None:
    ranked = sorted(
        (rank, path) for family, path in candidates if (rank := _rank(family, path)) is not None
    )
    return next((path for _, path in ranked if _has_cjk_glyphs(path)), None)


@cache
def cjk_font() -> str | None:
    """Path of an installed font that draws Chinese, or None; looked up once per process.

    First matplotlib's font list (its cache), then a fresh scan of the system font folders
    (``/usr/share/fonts`` and the like) for a font installed after that cache was built; a font
    found that way is added to matplotlib's font manager too.
    """
    cached = [(entry.name, entry.fname) for entry in font_manager.fontManager.ttflist]
    path = _best(cached)
    if path is None:
        known = {fname for _, fname in cached}
        fresh = [p for p in font_manager.findSystemFonts() if p not in known]
        path = _best([("", p) for p in fresh])
        if path is not None:
            try:
                font_manager.fontManager.addfont(path)
            except Exception:  # drawing uses the file path; the font list is a nicety
                log.debug("could not add %s to matplotlib's font list", path, exc_info=True)
    return path


def _is_cjk(ch: str) -> bool:
    return (
        "\u2e80" <= ch <= "\u9fff"  # radicals, punctuation, kana, CJK ideographs
        or "\uac00" <= ch <= "\ud7af"  # Hangul
        or "\uf900" <= ch <= "\ufaff"  # compatibility ideographs
        or "\uff00" <= ch <= "\uffef"  # full-width forms
        or "\U00020000" <= ch <= "\U0003134f"  # extension ideographs
    )


def _cells(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` half-width cells, with an ellipsis when cut."""
    text = " ".join(text.split())
    if sum(map(_cells, text)) <= limit:
        return text
    out, used = [], 1  # the ellipsis takes one cell
    for ch in text:
        used += _cells(ch)
        if used > limit:
            break
        out.append(ch)
    return "".join(out).rstrip() + "…"


def _fit(text: Text, max_px: float, renderer: RendererBase) -> None:
    """Cut ``text`` (with an ellipsis) until it is at most ``max_px`` wide."""
    full = text.get_text()
    if text.get_window_extent(renderer).width <= max_px:
        return
    low, high = 0, len(full) - 1  # the longest prefix that fits lies in [low, high]
    while low < high:
        mid = (low + high + 1) // 2
        text.set_text(full[:mid].rstrip() + "…")
        if text.get_window_extent(renderer).width <= max_px:
            low = mid
        else:
            high = mid - 1
    text.set_text(full[:low].rstrip() + "…")


def _pick(text: dict[str, str], lang: str) -> str:
    return text.get(lang) or text.get("en") or next(iter(text.values()), "")


def _texts(
    rows: Sequence[FunnelRow], lang: str, title: dict[str, str]
) -> tuple[str, list[str], str | None]:
    """Title, stage labels and font path: English and the default font if CJK can't be drawn."""
    global _warned_no_cjk
    head, labels = _pick(title, lang), [_pick(row.label, lang) for row in rows]
    shown = [head, *labels, *(row.amount for row in rows)]
    if not any(_is_cjk(ch) for text in shown for ch in text):
        return head, labels, None
    font = cjk_font()
    if font is not None:
        return head, labels, font
    if not _warned_no_cjk:
        _warned_no_cjk = True
        log.warning(
            "no CJK font installed (e.g. apt-get install fonts-wqy-microhei): "
            "funnel charts use the English stage names"
        )
    return _pick(title, "en"), [_pick(row.label, "en") for row in rows], None


def _colour(i: int, n: int) -> tuple[float, float, float]:
    f = i / (n - 1) if n > 1 else 0.0
    (r0, g0, b0), (r1, g1, b1) = BAR_DARK, BAR_LIGHT
    return (r0 + (r1 - r0) * f, g0 + (g1 - g0) * f, b0 + (b1 - b0) * f)


@dataclass
class _Layout:
    """Sizes and positions shared by the charts with ``n`` stages."""

    n: int
    plain: dict  # text properties of names and amounts
    strong: dict  # of counts and the title
    # In figure fractions: labels end at x = 0.30, bars fill 0.32-0.70 around 0.51, amounts
    # start at 0.72; the rows share y from 0.88 (below the title) down to 0.03, first on top.
    centre: float = 0.51
    span: float = 0.385
    label_end: float = 0.30
    amount_start: float = 0.72
    top: float = 0.88

    @property
    def pitch(self) -> float:
        return 0.85 / max(self.n, 1)

    def y(self, i: int) -> float:
        return self.top - (i + 0.5) * self.pitch


@dataclass
class _Base:
    """A figure with what every chart of its title and stage names shares (those texts on the
    white page) already drawn, and those pixels kept: a chart restores them and draws only its
    bars, counts and amounts, about a third of the drawing."""

    fig: Figure
    canvas: FigureCanvasAgg
    layout: _Layout
    pixels: object  # canvas.copy_from_bbox(...)


_bases: dict[tuple[str, tuple[str, ...], str | None], _Base] = {}
MAX_BASES = 8  # titles and stage names per language and playbook: a handful per process


def _layout(n: int, font: str | None) -> _Layout:
    size = 15 if n <= 8 else max(7, 15 - (n - 8) // 2)
    if font:
        props = FontProperties(fname=font)
        bold = props.copy()
        bold.set_weight("bold")  # a font given by file keeps its one weight
    else:
        # The files the family resolves to, looked up once rather than at every text drawn.
        props = FontProperties(fname=_family_file("normal"))
        bold = FontProperties(fname=_family_file("bold"))
    plain = {"fontproperties": props, "fontsize": size, "parse_math": False, "va": "center"}
    return _Layout(n, plain, {**plain, "fontproperties": bold})


@cache
def _family_file(weight: str) -> str:
    return font_manager.findfont(FontProperties(family="DejaVu Sans", weight=weight))


def _base(head: str, labels: tuple[str, ...], font: str | None) -> _Base:
    """The figure for this title and these stage names, drawn once (call with _lock held)."""
    key = (head, labels, font)
    if key in _bases:
        return _bases[key]
    layout = _layout(len(labels), font)
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    size = layout.strong["fontsize"] + 5
    heading = fig.text(
        0.5,
        0.95,
        _shorten(head, 200),
        ha="center",
        color=INK,
        **{**layout.strong, "fontsize": size},
    )
    _fit(heading, WIDTH_PX - 40, renderer)
    for i, label in enumerate(labels):
        name = fig.text(
            layout.label_end,
            layout.y(i),
            _shorten(label, 200),
            ha="right",
            color=INK,
            **layout.plain,
        )
        _fit(name, layout.label_end * WIDTH_PX - 10, renderer)
    canvas.draw()
    if len(_bases) >= MAX_BASES:
        _bases.pop(next(iter(_bases)))  # the oldest
    base = _bases[key] = _Base(fig, canvas, layout, canvas.copy_from_bbox(fig.bbox))
    return base


def _add_rows(
    fig: Figure, layout: _Layout, rows: Sequence[FunnelRow], renderer, artists: list
) -> None:
    """Each stage's bar, count and amount, added to ``fig`` (not drawn yet) and to ``artists``."""
    most = max((row.count for row in rows), default=0)
    centre, span, pitch = layout.centre, layout.span, layout.pitch
    for i, row in enumerate(rows):
        y = layout.y(i)
        count = max(row.count, 0)
        width = max(count / most * span if most > 0 else 0.0, 0.004)  # 0 shows a sliver
        bar = Rectangle(
            (centre - width / 2, y - 0.36 * pitch),
            width,
            0.72 * pitch,
            color=_colour(i, layout.n),
            lw=0,
        )
        artists.append(fig.add_artist(bar))
        if width >= 0.06:
            shown = fig.text(centre, y, str(count), ha="center", color="white", **layout.strong)
        else:
            x = centre + width / 2 + 0.01
            shown = fig.text(x, y, str(count), ha="left", color=INK, **layout.strong)
        artists.append(shown)
        if row.amount:
            amount = fig.text(
                layout.amount_start,
                y,
                _shorten(row.amount, 200),
                ha="left",
                color=MUTED,
                **layout.plain,
            )
            _fit(amount, (1 - layout.amount_start) * WIDTH_PX - 10, renderer)
            artists.append(amount)


def funnel_png(rows: Sequence[FunnelRow], *, lang: str, title: dict[str, str]) -> bytes:
    """A 900×600 PNG: one centred horizontal bar per stage, width in proportion to its count.

    Each row shows the stage name (left), the count (in or beside the bar) and the weighted
    amount (right). Text is drawn literally (no mathtext, so ``$`` is safe) on one line, cut
    with an ellipsis where it would not fit.
    """
    head, labels, font = _texts(rows, lang, title)
    with _lock:
        base = _base(head, tuple(labels), font)
        renderer = base.canvas.get_renderer()
        base.canvas.restore_region(base.pixels)
        artists: list = []  # removed again even if adding them fails half-way
        try:
            _add_rows(base.fig, base.layout, rows, renderer, artists)
            # As Figure.draw would: bars under the texts (no two texts overlap).
            for artist in sorted(artists, key=lambda a: a.get_zorder()):
                base.fig.draw_artist(artist)
            return _png(base.canvas.buffer_rgba())
        finally:
            for artist in artists:
                artist.remove()


def _png(rgba) -> bytes:
    """The canvas as an RGBA PNG, rows unfiltered, zlib level 1.

    The chart is flat colours on white, which compresses well without PNG's row filters:
    matplotlib's encoder (Pillow: adaptive filters, level 6) took 15 ms a chart, this 5.
    """
    pixels = np.asarray(rgba)
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + width * 4), dtype=np.uint8)  # each row: filter type 0, pixels
    rows[:, 1:] = pixels.reshape(height, width * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows, 1)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
