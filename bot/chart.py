"""The funnel chart of a manager's daily digest, as PNG bytes for Telegram's sendPhoto.

Rendered with matplotlib's Agg canvas on a standalone ``Figure`` (no pyplot: no GUI, no global
figure registry, nothing kept between calls). Chinese text needs a CJK font: ``cjk_font`` looks one
up once per process; without one, Chinese charts fall back to the English labels.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

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


def funnel_png(rows: Sequence[FunnelRow], *, lang: str, title: dict[str, str]) -> bytes:
    """A 900×600 PNG: one centred horizontal bar per stage, width in proportion to its count.

    Each row shows the stage name (left), the count (in or beside the bar) and the weighted
    amount (right). Text is drawn literally (no mathtext, so ``$`` is safe) on one line, cut
    with an ellipsis where it would not fit.
    """
    head, labels, font = _texts(rows, lang, title)
    n = len(rows)
    size = 15 if n <= 8 else max(7, 15 - (n - 8) // 2)
    props = FontProperties(fname=font) if font else FontProperties(family="DejaVu Sans")
    bold = props.copy()
    bold.set_weight("bold")  # a font given by file keeps its one weight
    plain = {"fontproperties": props, "fontsize": size, "parse_math": False, "va": "center"}
    strong = {**plain, "fontproperties": bold}
    # In figure fractions: labels end at x = 0.30, bars fill 0.32-0.70 around 0.51, amounts start
    # at 0.72; the rows share y from 0.88 (below the title) down to 0.03, the first stage on top.
    centre, span, label_end, amount_start = 0.51, 0.385, 0.30, 0.72
    top, pitch = 0.88, 0.85 / max(n, 1)
    most = max((row.count for row in rows), default=0)

    with _lock:
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        renderer = canvas.get_renderer()
        heading = fig.text(
            0.5,
            0.95,
            _shorten(head, 200),
            ha="center",
            color=INK,
            **{**strong, "fontsize": size + 5},
        )
        _fit(heading, WIDTH_PX - 40, renderer)
        for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
            y = top - (i + 0.5) * pitch
            count = max(row.count, 0)
            width = max(count / most * span if most > 0 else 0.0, 0.004)  # 0 shows a sliver
            bar = Rectangle(
                (centre - width / 2, y - 0.36 * pitch),
                width,
                0.72 * pitch,
                color=_colour(i, n),
                lw=0,
            )
            fig.add_artist(bar)
            name = fig.text(label_end, y, _shorten(label, 200), ha="right", color=INK, **plain)
            _fit(name, label_end * WIDTH_PX - 10, renderer)
            if width >= 0.06:
                fig.text(centre, y, str(count), ha="center", color="white", **strong)
            else:
                fig.text(centre + width / 2 + 0.01, y, str(count), ha="left", color=INK, **strong)
            if row.amount:
                amount = fig.text(
                    amount_start, y, _shorten(row.amount, 200), ha="left", color=MUTED, **plain
                )
                _fit(amount, (1 - amount_start) * WIDTH_PX - 10, renderer)
        out = io.BytesIO()
        canvas.print_png(out)
        fig.clear()  # break the artists' reference cycles now rather than at the next gc
    return out.getvalue()
