"""The funnel chart of a manager's daily digest, as PNG bytes for Telegram's sendPhoto.

What charts share, the title and stage names, is drawn once per language with matplotlib's Agg
canvas on a standalone ``Figure`` (no pyplot: no GUI, no global figure registry) and kept; each
chart copies it and draws its own bars and numbers with Pillow. Chinese text needs a CJK font:
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
from matplotlib.text import Text
from PIL import Image, ImageDraw, ImageFont

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
    size: float  # of names, amounts and counts, in points; the title is 5 points larger
    regular: str  # font file of names and amounts
    bold: str  # of counts and the title
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
    """What every chart of its title and stage names shares: those texts drawn by matplotlib
    on the white page, once. A chart copies it and draws its bars, counts and amounts with
    Pillow (matplotlib's text engine took 1 ms for each number)."""

    image: Image.Image  # RGB
    layout: _Layout


_bases: dict[tuple[str, tuple[str, ...], str | None], _Base] = {}
MAX_BASES = 8  # titles and stage names per language and playbook: a handful per process


def _layout(n: int, font: str | None) -> _Layout:
    size = 15 if n <= 8 else max(7, 15 - (n - 8) // 2)
    if font:
        return _Layout(n, size, font, font)  # a font given by file has its one weight
    return _Layout(n, size, _family_file("normal"), _family_file("bold"))


@cache
def _family_file(weight: str) -> str:
    return font_manager.findfont(FontProperties(family="DejaVu Sans", weight=weight))


def _base(head: str, labels: tuple[str, ...], font: str | None) -> _Base:
    """The page with this title and these stage names, drawn once (call with _lock held)."""
    key = (head, labels, font)
    if key in _bases:
        return _bases[key]
    layout = _layout(len(labels), font)
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    common = {"parse_math": False, "va": "center", "color": INK}
    heading = fig.text(
        0.5,
        0.95,
        _shorten(head, 200),
        ha="center",
        fontproperties=FontProperties(fname=layout.bold),
        fontsize=layout.size + 5,
        **common,
    )
    _fit(heading, WIDTH_PX - 40, renderer)
    regular = FontProperties(fname=layout.regular)
    for i, label in enumerate(labels):
        name = fig.text(
            layout.label_end,
            layout.y(i),
            _shorten(label, 200),
            ha="right",
            fontproperties=regular,
            fontsize=layout.size,
            **common,
        )
        _fit(name, layout.label_end * WIDTH_PX - 10, renderer)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())
    if len(_bases) >= MAX_BASES:
        _bases.pop(next(iter(_bases)))  # the oldest
    base = _bases[key] = _Base(image, layout)
    return base


@cache
def _pil_font(path: str, points: float) -> tuple[ImageFont.FreeTypeFont, float]:
    """The font at the figure's DPI (as matplotlib sizes it; no shaping: numbers and amounts),
    and how far below a line's centre its baseline lies. That is matplotlib's va="center",
    which centres the box from the top of "l" to the bottom of "p", as the names are drawn."""
    font = ImageFont.truetype(path, points * DPI / 72, layout_engine=ImageFont.Layout.BASIC)
    _, top, _, bottom = font.getbbox("lp", anchor="ls")
    return font, -(top + bottom) / 2


def _pil_fit(text: str, font: ImageFont.FreeTypeFont, max_px: float) -> str:
    """``text``, cut with an ellipsis until it is at most ``max_px`` wide."""
    if font.getlength(text) <= max_px:
        return text
    low, high = 0, len(text) - 1  # the longest prefix that fits lies in [low, high]
    while low < high:
        mid = (low + high + 1) // 2
        if font.getlength(text[:mid].rstrip() + "…") <= max_px:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + "…"


def _rgb(colour: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(round(c * 255) for c in colour)


def _draw_rows(image: Image.Image, layout: _Layout, rows: Sequence[FunnelRow]) -> None:
    """Each stage's bar, count (in or beside the bar) and amount, drawn on ``image``."""
    draw = ImageDraw.Draw(image)
    strong, strong_drop = _pil_font(layout.bold, layout.size)
    plain, plain_drop = _pil_font(layout.regular, layout.size)
    most = max((row.count for row in rows), default=0)
    centre, span, pitch = layout.centre, layout.span, layout.pitch
    for i, row in enumerate(rows):
        y = (1 - layout.y(i)) * HEIGHT_PX  # pixels from the top
        count = max(row.count, 0)
        width = max(count / most * span if most > 0 else 0.0, 0.004)  # 0 shows a sliver
        left, right = (centre - width / 2) * WIDTH_PX, (centre + width / 2) * WIDTH_PX
        half = 0.36 * pitch * HEIGHT_PX
        box = (round(left), round(y - half), round(right) - 1, round(y + half) - 1)
        draw.rectangle(box, fill=_rgb(_colour(i, layout.n)))
        at = y + strong_drop
        if width >= 0.06:
            draw.text((centre * WIDTH_PX, at), str(count), "white", strong, anchor="ms")
        else:
            draw.text((right + 0.01 * WIDTH_PX, at), str(count), INK, strong, anchor="ls")
        if row.amount:
            room = (1 - layout.amount_start) * WIDTH_PX - 10
            amount = _pil_fit(_shorten(row.amount, 200), plain, room)
            at = (layout.amount_start * WIDTH_PX, y + plain_drop)
            draw.text(at, amount, MUTED, plain, anchor="ls")


def funnel_png(rows: Sequence[FunnelRow], *, lang: str, title: dict[str, str]) -> bytes:
    """A 900×600 PNG: one centred horizontal bar per stage, width in proportion to its count.

    Each row shows the stage name (left), the count (in or beside the bar) and the weighted
    amount (right). Text is drawn literally (no mathtext, so ``$`` is safe) on one line, cut
    with an ellipsis where it would not fit.
    """
    head, labels, font = _texts(rows, lang, title)
    with _lock:
        base = _base(head, tuple(labels), font)
        image = base.image.copy()
        _draw_rows(image, base.layout, rows)
    return _png(np.asarray(image))


def _png(pixels: np.ndarray) -> bytes:
    """RGB pixels as a PNG: every row with the Sub filter, zlib level 1.

    The chart is flat colours on white: Sub (each byte less the same byte of the pixel to its
    left) turns a run of one colour into zeros, which zlib's fastest level compresses in 3 ms
    (unfiltered 4 ms; matplotlib's encoder, Pillow's adaptive filters at level 6, 15 ms).
    """
    height, width = pixels.shape[:2]
    flat = pixels.reshape(height, width * 3)
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 1  # the row's filter type: Sub
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])  # modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
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
