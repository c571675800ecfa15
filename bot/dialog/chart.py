"""The funnel chart of a manager's daily digest, as PNG bytes for Telegram's sendPhoto.

Drawn with Pillow alone, not a plotting library such as matplotlib: importing one would take a
large share of the bot's 150 MB memory target (bench/README.md). What charts share, the title
and stage names, is drawn once per language and playbook and kept; each chart copies that page,
draws its bars and numbers on it and encodes the PNG itself.

Fonts are files found by scanning the usual font directories once per process: DejaVu Sans for
Latin text (Pillow's bundled font when it is not installed) and, for Chinese, the preferred
installed font that really has Chinese glyphs (``cjk_font``); without one, Chinese charts fall
back to the English labels.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

WIDTH_PX, HEIGHT_PX, DPI = 900, 600, 100

FONT_SUFFIXES = (".ttf", ".ttc", ".otf")
LATIN_FONT, LATIN_BOLD_FONT = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"  # file names
# Preferred CJK fonts, best first, by a fragment of their file name (compared lower-case with
# spaces, dashes and underscores removed): WenQuanYi Micro Hei and Zen Hei, Noto Sans CJK,
# Source Han Sans, Droid Sans Fallback, AR PL UMing and UKai, then the serif ones.
CJK_FONTS = (
    "wqy-microhei",
    "wqy-zenhei",
    "NotoSansCJKsc",
    "NotoSansSC",
    "NotoSansCJK",
    "SourceHanSansSC",
    "SourceHanSans",
    "DroidSansFallback",
    "uming",
    "ukai",
    "NotoSerifCJKsc",
    "NotoSerifCJK",
    "SourceHanSerif",
)
PROBE = "中文商机"  # a font must have these glyphs to count as a CJK font
NONCHARACTER = "\uffff"  # never in a font: drawn as the font's missing-glyph box (.notdef)

BAR_DARK, BAR_LIGHT = (0.12, 0.31, 0.60), (0.55, 0.73, 0.90)  # top and bottom bar colours
INK, MUTED = "#1f2933", "#52606d"

_lock = threading.Lock()  # the kept pages, and the fonts: a FreeType face draws in one thread
_warned_no_cjk = False


@dataclass(frozen=True)
class FunnelRow:
    label: dict[str, str]  # stage name per language, e.g. {"zh": "潜在的商机", "en": "..."}
    count: int  # open deals in the stage
    amount: str  # already formatted weighted amount, e.g. "¥1,250,000.00" (may be "")


def _font_dirs() -> list[str]:
    """Where fonts are installed: system-wide, then the user's."""
    dirs = [
        "/usr/share/fonts",
        "/usr/local/share/fonts",
        os.path.expanduser("~/.local/share/fonts"),
        os.path.expanduser("~/.fonts"),
    ]
    if data_home := os.environ.get("XDG_DATA_HOME"):
        dirs.append(os.path.join(data_home, "fonts"))
    return dirs


def _files_under(folder: str) -> Iterator[str]:
    for root, _, names in os.walk(folder):  # nothing when the folder does not exist
        yield from (os.path.join(root, name) for name in names)


@cache
def _font_files() -> tuple[str, ...]:
    """Paths of the font files in the font directories, sorted; scanned once per process."""
    found = {
        path
        for folder in _font_dirs()
        for path in _files_under(folder)
        if path.lower().endswith(FONT_SUFFIXES)
    }
    return tuple(sorted(found))


def _installed(file_name: str) -> str | None:
    return next((p for p in _font_files() if os.path.basename(p) == file_name), None)


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch not in " -_")


def _rank(path: str) -> int | None:
    """Position of a font file in ``CJK_FONTS`` (lower is better), or None if not there."""
    name = _key(os.path.basename(path))
    return next((rank for rank, part in enumerate(CJK_FONTS) if _key(part) in name), None)


def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch)
    return mask.size, bytes(mask)


def _has_cjk_glyphs(path: str) -> bool:
    """Whether the font draws each character of ``PROBE`` as a glyph of its own, not as the
    box it draws for characters it lacks."""
    try:
        # From the open file: given a path it cannot load, Pillow loads a same-named font from
        # elsewhere instead.
        with open(path, "rb") as file:
            font = ImageFont.truetype(file, 32, layout_engine=ImageFont.Layout.BASIC)
        missing = _glyph(font, NONCHARACTER)
        return all(_glyph(font, ch) != missing for ch in PROBE)
    except Exception:  # unreadable or unsupported file: not usable
        return False


@cache
def cjk_font() -> str | None:
    """Path of an installed font that draws Chinese, or None; looked up once per process.

    The installed font files named in ``CJK_FONTS``, best first, until one has the ``PROBE``
    glyphs (a file can be misnamed, or a subset without Chinese).
    """
    ranked = sorted((rank, path) for path in _font_files() if (rank := _rank(path)) is not None)
    return next((path for _, path in ranked if _has_cjk_glyphs(path)), None)


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
    regular: str | None  # font file of names and amounts; None: Pillow's bundled font
    bold: str | None  # of counts and the title
    # In fractions of the image, y from the bottom: labels end at x = 0.30, bars fill
    # 0.32-0.70 around 0.51, amounts start at 0.72; the title is centred at y = 0.95, the rows
    # share y from 0.88 down to 0.03, first on top.
    centre: float = 0.51
    span: float = 0.385
    label_end: float = 0.30
    amount_start: float = 0.72
    title_y: float = 0.95
    top: float = 0.88

    @property
    def pitch(self) -> float:
        return 0.85 / max(self.n, 1)

    def y(self, i: int) -> float:
        return self.top - (i + 0.5) * self.pitch


@dataclass
class _Base:
    """What every chart of its title and stage names shares: the white page with those texts,
    drawn once. A chart copies it and draws its bars, counts and amounts."""

    image: Image.Image  # RGB
    layout: _Layout


_bases: dict[tuple[str, tuple[str, ...], str | None], _Base] = {}
MAX_BASES = 8  # titles and stage names per language and playbook: a handful per process


def _layout(n: int, font: str | None) -> _Layout:
    size = 15 if n <= 8 else max(7, 15 - (n - 8) // 2)
    if font:
        return _Layout(n, size, font, font)  # a font given by file has its one weight
    regular = _installed(LATIN_FONT)
    return _Layout(n, size, regular, _installed(LATIN_BOLD_FONT) or regular)


def _base(head: str, labels: tuple[str, ...], font: str | None) -> _Base:
    """The page with this title and these stage names, drawn once (call with _lock held)."""
    key = (head, labels, font)
    if key in _bases:
        return _bases[key]
    layout = _layout(len(labels), font)
    image = _page(head, labels, layout)
    if len(_bases) >= MAX_BASES:
        _bases.pop(next(iter(_bases)))  # the oldest
    base = _bases[key] = _Base(image, layout)
    return base


def _page(head: str, labels: tuple[str, ...], layout: _Layout) -> Image.Image:
    """The title centred at the top and each stage name ending left of its bar, in ink."""
    image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), "white")
    draw = ImageDraw.Draw(image)
    title, title_drop = _font(layout.bold, layout.size + 5)
    heading = _fit(_shorten(head, 200), title, WIDTH_PX - 40)
    at = (WIDTH_PX / 2, (1 - layout.title_y) * HEIGHT_PX + title_drop)
    draw.text(at, heading, INK, title, anchor="ms")
    name, name_drop = _font(layout.regular, layout.size)
    right = layout.label_end * WIDTH_PX
    for i, label in enumerate(labels):
        at = (right, (1 - layout.y(i)) * HEIGHT_PX + name_drop)
        draw.text(at, _fit(_shorten(label, 200), name, right - 10), INK, name, anchor="rs")
    return image


@cache
def _font(path: str | None, points: float) -> tuple[ImageFont.FreeTypeFont, float]:
    """The font (None: Pillow's bundled one) at the image's DPI, without shaping, and how far
    below a line's centre its baseline lies: the centre of the box from the top of "l" to the
    bottom of "p", so every text of a row sits alike."""
    px, basic = points * DPI / 72, ImageFont.Layout.BASIC
    if path:
        font = ImageFont.truetype(path, px, layout_engine=basic)
    else:
        font = ImageFont.load_default(px).font_variant(layout_engine=basic)
    _, top, _, bottom = font.getbbox("lp", anchor="ls")
    return font, -(top + bottom) / 2


def _fit(text: str, font: ImageFont.FreeTypeFont, max_px: float) -> str:
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
    strong, strong_drop = _font(layout.bold, layout.size)
    plain, plain_drop = _font(layout.regular, layout.size)
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
            amount = _fit(_shorten(row.amount, 200), plain, room)
            at = (layout.amount_start * WIDTH_PX, y + plain_drop)
            draw.text(at, amount, MUTED, plain, anchor="ls")


def funnel_png(rows: Sequence[FunnelRow], *, lang: str, title: dict[str, str]) -> bytes:
    """A 900×600 PNG: one centred horizontal bar per stage, width in proportion to its count.

    Each row shows the stage name (left), the count (in or beside the bar) and the weighted
    amount (right). Text is drawn literally (``$`` and markup are just characters) on one line,
    cut with an ellipsis where it would not fit.
    """
    head, labels, font = _texts(rows, lang, title)
    with _lock:
        base = _base(head, tuple(labels), font)
        image = base.image.copy()
        _draw_rows(image, base.layout, rows)
    return _png(image)


NO_FILTER = b"\x00"  # a PNG row's first byte: its filter type


def _png(image: Image.Image) -> bytes:
    """An RGB image as a PNG: rows unfiltered, zlib level 1.

    The chart is flat colours on white, which zlib's fastest level compresses well as it is,
    quickly and small. The Sub filter is no faster to compress, makes more bytes and needs
    numpy (more memory) to compute quickly; Pillow's own encoder (adaptive filters) is slower
    even at level 1 (bench/README.md).
    """
    width, height = image.size
    stride = 3 * width
    pixels = memoryview(image.tobytes())
    rows = b"".join(
        part
        for start in range(0, len(pixels), stride)
        for part in (NO_FILTER, pixels[start : start + stride])
    )
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
